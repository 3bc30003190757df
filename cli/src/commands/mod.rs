//! The subcommands, one module each; `dispatch` routes a parsed command to its module.

pub mod archive;
pub mod cp;
pub mod create;
pub mod list;
pub mod login;
pub mod prune;
pub mod ps;
pub mod pull;
pub mod push;
pub mod rm;
pub mod run;
pub mod serve;
pub mod show;
pub mod sign;
pub mod stop;
pub mod verify;

use std::process::ExitCode;

use llmpm_spec::Reference;

use crate::cli::Command;
use crate::client::Client;
use crate::error::UserError;
use crate::printer::Printer;
use crate::settings::Settings;

/// Runs one subcommand (`serve` replaces this process with the daemon).
pub async fn dispatch(
    command: Command,
    settings: &Settings,
    printer: &Printer,
) -> anyhow::Result<ExitCode> {
    let client = &Client::new(settings, printer.clone());
    match command {
        Command::Serve => serve::run(settings),
        Command::List(args) => list::run(&args, client, printer).await,
        Command::Show(args) => show::run(&args, client, printer).await,
        Command::Ps(args) => ps::run(&args, client, printer).await,
        Command::Stop(args) => stop::run(&args, client).await,
        Command::Run(args) => run::run(&args, client, printer).await,
        Command::Rm(args) => rm::run(&args, client, printer).await,
        Command::Cp(args) => cp::run(&args, client, printer).await,
        Command::Create(args) => create::run(&args, settings, client, printer).await,
        Command::Pull(args) => pull::run(&args, client, printer).await,
        Command::Push(args) => push::run(&args, client, printer).await,
        Command::Login(args) => login::login(&args, settings, printer),
        Command::Logout(args) => login::logout(&args, settings, printer),
        Command::Prune(args) => prune::run(&args, client, printer).await,
        Command::Verify(args) => verify::run(&args, client, printer).await,
        Command::Keygen(args) => sign::keygen(&args, client, printer).await,
        Command::Sign(args) => sign::sign(&args, client, printer).await,
        Command::Export(args) => sign::export(&args, client, printer).await,
        Command::Save(args) => archive::save(&args, client, printer).await,
        Command::Load(args) => archive::load(&args, client, printer).await,
    }?;
    Ok(ExitCode::SUCCESS)
}

/// Checks a model name before it is sent, so a typo is reported here, with
/// the reason, as a user error.
pub fn parse_name(name: &str) -> anyhow::Result<Reference> {
    name.parse::<Reference>()
        .map_err(|e| UserError::new(e.to_string()).into())
}
