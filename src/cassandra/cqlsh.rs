//! The one reader of cqlsh's table output (`cqlsh -e "SELECT ..."`), shared by every query cbk
//! makes through cqlsh (live table ids, secondary indexes), so the format is parsed in one place.
//!
//! cqlsh prints a blank line, the header row, a rule (`----+----`), one line per row with the
//! cells separated by ` | `, then `(N rows)`. Warnings and the footer have no `|` cells.

/// Whether `line` is the rule under the header: dashes joined by `+`.
fn is_rule(line: &str) -> bool {
    let line = line.trim();
    line.contains('-') && line.chars().all(|c| c == '-' || c == '+')
}

/// The data rows of cqlsh output with exactly `columns` cells each, trimmed, in output order.
/// The header (the row right above the rule) is left out; lines with another number of cells
/// (warnings, `(N rows)`) are skipped. Callers still check each cell's form.
pub fn rows(stdout: &str, columns: usize) -> Vec<Vec<&str>> {
    let lines: Vec<&str> = stdout.lines().collect();
    lines
        .iter()
        .enumerate()
        .filter(|(i, _)| !lines.get(i + 1).is_some_and(|next| is_rule(next)))
        .map(|(_, l)| l.split('|').map(str::trim).collect::<Vec<&str>>())
        .filter(|cells| cells.len() == columns)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLES: &str = "
 keyspace_name | table_name | id
---------------+------------+--------------------------------------
          shop |     orders | 0a1b2c3d-0000-4000-8000-000000000001
        system |      local | 7ad54392-bcdd-35a6-8417-4e047860b377

(2 rows)
";

    #[test]
    fn data_rows_without_header_rule_or_footer() {
        assert_eq!(
            rows(TABLES, 3),
            vec![
                vec!["shop", "orders", "0a1b2c3d-0000-4000-8000-000000000001"],
                vec!["system", "local", "7ad54392-bcdd-35a6-8417-4e047860b377"],
            ]
        );
        // Another column count: nothing (the rows have three cells).
        assert!(rows(TABLES, 2).is_empty());
    }

    #[test]
    fn no_rows_and_warnings() {
        let out = "\nWarnings :\nAggregation query used without partition key\n\n \
                   keyspace_name | table_name | index_name\n---------------+------------+-----------\n\n(0 rows)\n";
        assert!(rows(out, 3).is_empty());
        assert!(rows("", 3).is_empty());
    }

    #[test]
    fn empty_cells_are_kept_for_the_caller_to_judge() {
        let out = " a | b | c\n---+---+---\n x |   | z\n";
        assert_eq!(rows(out, 3), vec![vec!["x", "", "z"]]);
    }

    #[test]
    fn a_header_is_only_the_row_above_the_rule() {
        // Without a rule every row with the right cell count is data.
        assert_eq!(rows(" x | y\n", 2), vec![vec!["x", "y"]]);
    }
}
