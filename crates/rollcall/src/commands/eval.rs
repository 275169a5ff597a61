//! `rollcall eval`: accuracy of the face engine on the deployer's own labelled photos.

#[derive(clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("rollcall eval: no evaluation mode selected")
}
