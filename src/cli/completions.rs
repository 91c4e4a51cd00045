//! `cbk completions`, `cbk man` and the hidden `cbk schema`.

/// Arguments of `cbk completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// Arguments of `cbk schema`.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Folder to write the schemas into.
    #[arg(default_value = "schemas")]
    pub dir: std::path::PathBuf,
}

/// Prints completions for a shell.
pub fn run(args: Args) -> miette::Result<u8> {
    let mut cmd = <super::Cli as clap::CommandFactory>::command();
    clap_complete::generate(args.shell, &mut cmd, "cbk", &mut std::io::stdout());
    Ok(0)
}

/// Prints the man page.
pub fn man() -> miette::Result<u8> {
    let cmd = <super::Cli as clap::CommandFactory>::command();
    clap_mangen::Man::new(cmd)
        .render(&mut std::io::stdout())
        .map_err(|e| miette::miette!("cannot write the man page: {e}"))?;
    Ok(0)
}

/// Writes the JSON Schemas (see [`json_schemas`]).
pub fn schema(args: SchemaArgs) -> miette::Result<u8> {
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| miette::miette!("cannot create `{}`: {e}", args.dir.display()))?;
    for (name, text) in json_schemas() {
        let path = args.dir.join(name);
        std::fs::write(&path, text)
            .map_err(|e| miette::miette!("cannot write `{}`: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(0)
}

/// The JSON Schemas generated from the types: `(file name, pretty JSON)`.
pub fn json_schemas() -> Vec<(&'static str, String)> {
    let render = |s: schemars::Schema| {
        let mut t = serde_json::to_string_pretty(&s).unwrap_or_default();
        t.push('\n');
        t
    };
    vec![
        (
            "plan.schema.json",
            render(schemars::schema_for!(crate::plan::model::PlanFile)),
        ),
        (
            "plan-output.schema.json",
            render(schemars::schema_for!(crate::graph::run::PlannedRun)),
        ),
        (
            "plan-compare.schema.json",
            render(schemars::schema_for!(crate::render::compare::Comparison)),
        ),
        (
            "node-manifest.schema.json",
            render(schemars::schema_for!(crate::repo::manifest::NodeManifest)),
        ),
        (
            "catalog.schema.json",
            render(schemars::schema_for!(crate::repo::manifest::Catalog)),
        ),
        (
            "index-entry.schema.json",
            render(schemars::schema_for!(crate::repo::manifest::IndexEntry)),
        ),
    ]
}
