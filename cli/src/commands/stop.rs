//! `llmpm stop MODEL`: unloads a model, as `ollama stop` does: a generate
//! request with no prompt and `keep_alive: 0`. Quiet on success, also when
//! the model was not loaded.

use llmpm_spec::api::GenerateRequest;

use crate::cli::StopArgs;
use crate::client::Client;
use crate::error::{StatusError, UserError};

/// Unloads the model.
pub async fn run(args: &StopArgs, client: &Client) -> anyhow::Result<()> {
    super::parse_name(&args.model)?;
    let req = GenerateRequest {
        model: args.model.clone(),
        stream: Some(false),
        keep_alive: Some(serde_json::json!(0)),
        ..GenerateRequest::default()
    };
    match client.generate(&req).await {
        Ok(_) => Ok(()),
        Err(e)
            if e.downcast_ref::<StatusError>()
                .is_some_and(|s| s.status == 404) =>
        {
            Err(
                UserError::new(format!("couldn't find model `{}` to stop", args.model))
                    .with_hint("`llmpm ps` lists the loaded models")
                    .into(),
            )
        }
        Err(e) => Err(e),
    }
}
