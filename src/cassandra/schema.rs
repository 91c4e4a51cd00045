//! Snapshot schema.cql: keyspace, table, `WITH ID`, and statements to re-create a table.
//!
//! Content (cassandra-facts §3.4): `CREATE TYPE IF NOT EXISTS` for UDTs, the
//! `CREATE TABLE IF NOT EXISTS … WITH ID = <uuid> AND …` statement, `ALTER TABLE … DROP/ADD`
//! for dropped columns, then `CREATE INDEX IF NOT EXISTS` / custom indexes. Only what cbk needs
//! is parsed; statements are otherwise kept verbatim.

use super::layout::TableId;

/// A schema.cql that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("schema.cql: unterminated {0}")]
    Unterminated(&'static str),
    #[error("schema.cql has no CREATE TABLE (or CREATE MATERIALIZED VIEW) statement")]
    NoTable,
    #[error("schema.cql has more than one CREATE TABLE statement")]
    SeveralTables,
    #[error("schema.cql: cannot read the table name in {0:?}")]
    BadName(String),
    #[error("schema.cql: bad table id in `WITH ID = {0}`")]
    BadId(String),
}

/// Kind of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    CreateType,
    CreateTable,
    CreateView,
    AlterTable,
    CreateIndex,
    Other,
}

/// One statement, verbatim (without the trailing `;`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub kind: StatementKind,
    pub text: String,
}

/// A parsed schema.cql.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaCql {
    pub keyspace: String,
    pub table: String,
    /// `WITH ID = …` (absent in some hand-written files).
    pub table_id: Option<TableId>,
    /// All statements in file order.
    pub statements: Vec<Statement>,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Sym(char),
}

/// Splits CQL into statements on `;` outside strings, quoted names and comments.
pub fn split_statements(text: &str) -> Result<Vec<String>, SchemaError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut it = text.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\'' | '"' => {
                cur.push(c);
                loop {
                    match it.next() {
                        None => {
                            return Err(SchemaError::Unterminated(if c == '\'' {
                                "string"
                            } else {
                                "quoted name"
                            }));
                        }
                        Some(d) if d == c => {
                            cur.push(d);
                            if it.peek() == Some(&c) {
                                cur.push(c);
                                it.next();
                            } else {
                                break;
                            }
                        }
                        Some(d) => cur.push(d),
                    }
                }
            }
            '$' if it.peek() == Some(&'$') => {
                it.next();
                cur.push_str("$$");
                let mut closed = false;
                while let Some(d) = it.next() {
                    cur.push(d);
                    if d == '$' && it.peek() == Some(&'$') {
                        it.next();
                        cur.push('$');
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(SchemaError::Unterminated("$$ string"));
                }
            }
            '-' if it.peek() == Some(&'-') => skip_line(&mut it),
            '/' if it.peek() == Some(&'/') => skip_line(&mut it),
            '/' if it.peek() == Some(&'*') => {
                it.next();
                let mut prev = ' ';
                let mut closed = false;
                for d in it.by_ref() {
                    if prev == '*' && d == '/' {
                        closed = true;
                        break;
                    }
                    prev = d;
                }
                if !closed {
                    return Err(SchemaError::Unterminated("comment"));
                }
                cur.push(' ');
            }
            ';' => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    Ok(out)
}

fn skip_line(it: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for d in it.by_ref() {
        if d == '\n' {
            break;
        }
    }
}

/// Tokens of one statement (strings become `Quoted` with their quote kept out).
fn tokens(stmt: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut it = stmt.chars().peekable();
    while let Some(c) = it.next() {
        if c.is_whitespace() {
            continue;
        }
        if c.is_ascii_alphanumeric() || c == '_' {
            let mut w = String::from(c);
            while let Some(&d) = it.peek() {
                if d.is_ascii_alphanumeric() || d == '_' || d == '-' {
                    w.push(d);
                    it.next();
                } else {
                    break;
                }
            }
            out.push(Tok::Word(w));
        } else if c == '"' {
            let mut w = String::new();
            while let Some(d) = it.next() {
                if d == '"' {
                    if it.peek() == Some(&'"') {
                        w.push('"');
                        it.next();
                    } else {
                        break;
                    }
                } else {
                    w.push(d);
                }
            }
            out.push(Tok::Quoted(w));
        } else if c == '\'' {
            while let Some(d) = it.next() {
                if d == '\'' {
                    if it.peek() == Some(&'\'') {
                        it.next();
                    } else {
                        break;
                    }
                }
            }
            out.push(Tok::Sym('\''));
        } else {
            out.push(Tok::Sym(c));
        }
    }
    out
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

fn classify(toks: &[Tok]) -> StatementKind {
    let w = |i: usize, kw: &str| is_kw(toks.get(i), kw);
    if w(0, "CREATE") {
        if w(1, "TABLE") || w(1, "COLUMNFAMILY") {
            return StatementKind::CreateTable;
        }
        if w(1, "TYPE") {
            return StatementKind::CreateType;
        }
        if w(1, "MATERIALIZED") && w(2, "VIEW") {
            return StatementKind::CreateView;
        }
        if w(1, "INDEX") || (w(1, "CUSTOM") && w(2, "INDEX")) {
            return StatementKind::CreateIndex;
        }
    }
    if w(0, "ALTER") && (w(1, "TABLE") || w(1, "COLUMNFAMILY")) {
        return StatementKind::AlterTable;
    }
    StatementKind::Other
}

fn name_of(t: &Tok) -> Option<String> {
    match t {
        // Unquoted names are case-insensitive (stored lower case); quoted ones keep case.
        Tok::Word(w) if !w.contains('-') => Some(w.to_ascii_lowercase()),
        Tok::Quoted(q) => Some(q.clone()),
        _ => None,
    }
}

impl SchemaCql {
    pub fn parse(text: &str) -> Result<SchemaCql, SchemaError> {
        let mut statements = Vec::new();
        let mut table: Option<(String, String, Option<TableId>)> = None;
        for s in split_statements(text)? {
            let toks = tokens(&s);
            let kind = classify(&toks);
            if matches!(kind, StatementKind::CreateTable | StatementKind::CreateView) {
                if table.is_some() {
                    return Err(SchemaError::SeveralTables);
                }
                // CREATE TABLE [IF NOT EXISTS] ks.t  |  CREATE MATERIALIZED VIEW [IF NOT EXISTS] ks.v
                let mut i = if kind == StatementKind::CreateView {
                    3
                } else {
                    2
                };
                if is_kw(toks.get(i), "IF")
                    && is_kw(toks.get(i + 1), "NOT")
                    && is_kw(toks.get(i + 2), "EXISTS")
                {
                    i += 3;
                }
                let bad = || SchemaError::BadName(s.chars().take(80).collect());
                let first = toks.get(i).and_then(name_of).ok_or_else(bad)?;
                if toks.get(i + 1) != Some(&Tok::Sym('.')) {
                    return Err(bad());
                }
                let second = toks.get(i + 2).and_then(name_of).ok_or_else(bad)?;
                let id = find_id(&s)?;
                table = Some((first, second, id));
            }
            statements.push(Statement { kind, text: s });
        }
        let (keyspace, table, table_id) = table.ok_or(SchemaError::NoTable)?;
        Ok(SchemaCql {
            keyspace,
            table,
            table_id,
            statements,
        })
    }

    /// Statements to re-create the table on a cluster, each ending in `;`: every CREATE gets
    /// `IF NOT EXISTS` (so a re-run converges); ALTERs and others are kept as they are.
    pub fn recreate_statements(&self) -> Vec<String> {
        self.statements
            .iter()
            .map(|s| {
                let t = match s.kind {
                    StatementKind::CreateType
                    | StatementKind::CreateTable
                    | StatementKind::CreateView
                    | StatementKind::CreateIndex => ensure_if_not_exists(&s.text),
                    _ => s.text.clone(),
                };
                format!("{t};")
            })
            .collect()
    }

    /// The CREATE TABLE (or VIEW) statement.
    pub fn table_statement(&self) -> Option<&Statement> {
        self.statements.iter().find(|s| {
            matches!(
                s.kind,
                StatementKind::CreateTable | StatementKind::CreateView
            )
        })
    }
}

/// `WITH ID = <uuid>` or `AND ID = <uuid>` (case-insensitive), searched outside strings.
fn find_id(stmt: &str) -> Result<Option<TableId>, SchemaError> {
    let toks = tokens(stmt);
    for w in toks.windows(4) {
        if (is_kw(Some(&w[0]), "WITH") || is_kw(Some(&w[0]), "AND"))
            && is_kw(Some(&w[1]), "ID")
            && w[2] == Tok::Sym('=')
        {
            return match &w[3] {
                Tok::Word(v) => TableId::parse(v)
                    .map(Some)
                    .map_err(|_| SchemaError::BadId(v.clone())),
                other => Err(SchemaError::BadId(format!("{other:?}"))),
            };
        }
    }
    Ok(None)
}

/// Inserts `IF NOT EXISTS` after `CREATE [CUSTOM] INDEX|TABLE|TYPE|MATERIALIZED VIEW` if absent.
pub fn ensure_if_not_exists(stmt: &str) -> String {
    let words: Vec<(usize, &str)> = {
        let mut v = Vec::new();
        let mut start = None;
        for (i, c) in stmt.char_indices() {
            let word_char = c.is_ascii_alphanumeric() || c == '_';
            match (word_char, start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    v.push((s, &stmt[s..i]));
                    start = None;
                    if v.len() >= 6 {
                        break;
                    }
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            v.push((s, &stmt[s..]));
        }
        v
    };
    let kw = |i: usize, k: &str| words.get(i).is_some_and(|(_, w)| w.eq_ignore_ascii_case(k));
    let after = if kw(1, "MATERIALIZED") || kw(1, "CUSTOM") {
        2
    } else {
        1
    };
    if !kw(0, "CREATE") || words.len() <= after {
        return stmt.to_string();
    }
    if kw(after + 1, "IF") && kw(after + 2, "NOT") && kw(after + 3, "EXISTS") {
        return stmt.to_string();
    }
    let (pos, w) = words[after];
    let end = pos + w.len();
    format!("{} IF NOT EXISTS{}", &stmt[..end], &stmt[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    // The 4.0-era example of the Cassandra docs (bulk_loading.adoc), verbatim.
    const DOC: &str = "CREATE TABLE IF NOT EXISTS cqlkeyspace.t (
   id int PRIMARY KEY,
   k int,
   v text)
   WITH ID = d132e240-c217-11e9-bbee-19821dcea330
   AND bloom_filter_fp_chance = 0.01
   AND crc_check_chance = 1.0
   AND default_time_to_live = 0
   AND gc_grace_seconds = 864000
   AND min_index_interval = 128
   AND max_index_interval = 2048
   AND memtable_flush_period_in_ms = 0
   AND speculative_retry = '99p'
   AND additional_write_policy = '99p'
   AND comment = ''
   AND caching = { 'keys': 'ALL', 'rows_per_partition': 'NONE' }
   AND compaction = { 'max_threshold': '32', 'min_threshold': '4',
   'class': 'org.apache.cassandra.db.compaction.SizeTieredCompactionStrategy' }
   AND compression = { 'chunk_length_in_kb': '16', 'class':
   'org.apache.cassandra.io.compress.LZ4Compressor' }
   AND cdc = false
   AND extensions = {  }
;
";

    #[test]
    fn doc_example() {
        let s = SchemaCql::parse(DOC).unwrap();
        assert_eq!(
            (s.keyspace.as_str(), s.table.as_str()),
            ("cqlkeyspace", "t")
        );
        assert_eq!(
            s.table_id.as_ref().unwrap().as_hex(),
            "d132e240c21711e9bbee19821dcea330"
        );
        assert_eq!(s.statements.len(), 1);
        let r = s.recreate_statements();
        assert!(r[0].starts_with("CREATE TABLE IF NOT EXISTS cqlkeyspace.t ("));
        assert!(r[0].ends_with(";"));
    }

    #[test]
    fn full_file_with_types_alters_indexes_and_tricky_strings() {
        let text = "CREATE TYPE IF NOT EXISTS ks.addr (street text, city text);\n\
CREATE TABLE \"Ks\".\"MyTable\" (\n\tid int PRIMARY KEY,\n\ta frozen<addr>,\n\tgone int)\n\tWITH ID = 5f2fbdad-91f1-3946-bd25-d5da3a5c35ec\n\tAND comment = 'it''s; -- not a comment'\n\tAND compaction = {'class': 'SizeTieredCompactionStrategy'};\n\
// a comment; with a semicolon\n\
ALTER TABLE \"Ks\".\"MyTable\" DROP gone USING TIMESTAMP 1690000000000000;\n\
/* block; */ CREATE INDEX t_a_idx ON \"Ks\".\"MyTable\" (a);\n\
CREATE CUSTOM INDEX IF NOT EXISTS sai ON \"Ks\".\"MyTable\" (id) USING 'StorageAttachedIndex';\n";
        let s = SchemaCql::parse(text).unwrap();
        assert_eq!((s.keyspace.as_str(), s.table.as_str()), ("Ks", "MyTable"));
        assert_eq!(
            s.table_id.as_ref().unwrap().as_hex(),
            "5f2fbdad91f13946bd25d5da3a5c35ec"
        );
        let kinds: Vec<StatementKind> = s.statements.iter().map(|x| x.kind).collect();
        use StatementKind::*;
        assert_eq!(
            kinds,
            vec![
                CreateType,
                CreateTable,
                AlterTable,
                CreateIndex,
                CreateIndex
            ]
        );
        assert!(s.statements[1].text.contains("'it''s; -- not a comment'"));
        let r = s.recreate_statements();
        assert!(r[1].starts_with("CREATE TABLE IF NOT EXISTS \"Ks\".\"MyTable\""));
        assert!(r[3].starts_with("CREATE INDEX IF NOT EXISTS t_a_idx ON"));
        assert!(r[4].starts_with("CREATE CUSTOM INDEX IF NOT EXISTS sai"));
        assert!(r[2].starts_with("ALTER TABLE"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            SchemaCql::parse("CREATE TYPE ks.a (x int);"),
            Err(SchemaError::NoTable)
        );
        assert_eq!(
            SchemaCql::parse("CREATE TABLE ks.t (a int PRIMARY KEY) WITH comment = 'x"),
            Err(SchemaError::Unterminated("string"))
        );
        assert!(matches!(
            SchemaCql::parse("CREATE TABLE ks.t (a int PRIMARY KEY) WITH ID = 1234;"),
            Err(SchemaError::BadId(_))
        ));
        assert!(matches!(
            SchemaCql::parse("CREATE TABLE t (a int PRIMARY KEY);"),
            Err(SchemaError::BadName(_))
        ));
        assert_eq!(
            SchemaCql::parse(
                "CREATE TABLE a.b (x int PRIMARY KEY); CREATE TABLE a.c (x int PRIMARY KEY);"
            ),
            Err(SchemaError::SeveralTables)
        );
        let s = SchemaCql::parse("create table ks.t (a int primary key);").unwrap();
        assert_eq!(s.table_id, None);
        assert_eq!(
            s.recreate_statements()[0],
            "create table IF NOT EXISTS ks.t (a int primary key);"
        );
    }
}
