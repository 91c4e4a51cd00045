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

/// Writes the JSON Schemas.
pub fn schema(_args: SchemaArgs) -> miette::Result<u8> {
    super::not_yet("schema")
}
