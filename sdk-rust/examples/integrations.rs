//! Creates a Retell integration, prints the webhook URL to paste into Retell, and lists the
//! project's integrations with their recent deliveries.
//!
//! ```sh
//! EARSHOT_API_KEY=es_... EARSHOT_PROJECT_ID=... RETELL_API_KEY=key_... \
//!     cargo run -p earshot --example integrations
//! ```

use earshot::{Client, NewIntegration, Provider};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let retell_key = std::env::var("RETELL_API_KEY").map_err(|_| "set RETELL_API_KEY")?;
    let client = Client::builder_from_env().connect().await?;
    let integrations = client.integrations();

    let created = integrations
        .create(
            NewIntegration::new(Provider::Retell)
                .display_name("Support agent")
                .secret("api_key", retell_key),
        )
        .await?;
    eprintln!("configure this webhook URL in Retell: {}", created.webhook_url);

    let page = integrations.list(None, None, None).await?;
    for integration in page.integrations {
        let deliveries = integrations.deliveries(&integration.id, None, None).await?;
        eprintln!(
            "{} ({}): {} requests, {} recent deliveries",
            integration.display_name,
            integration.public_id,
            integration.request_count,
            deliveries.deliveries.len()
        );
    }
    Ok(())
}
