//! Sends one call with a transcript and prints its datapoint once stored.
//!
//! ```sh
//! EARSHOT_API_KEY=es_... EARSHOT_PROJECT_ID=... cargo run -p earshot --example ingest_transcript
//! ```

use std::time::Duration;

use earshot::{Client, Conversation, Turn};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::builder_from_env().connect().await?;
    let call_id = format!("example-{}", std::process::id());
    let receipt = client
        .ingest_conversations(
            Conversation::new(&call_id)
                .source_platform("custom")
                .turn(Turn::assistant("Thanks for calling Acme, how can I help?").at_ms(0))
                .turn(Turn::user("I'd like to move my delivery to Friday.").at_ms(2600))
                .turn(Turn::assistant("Done: it will arrive on Friday.").at_ms(5200))
                .tag("deliveries")
                .metadata("customer_id", "cust_123"),
        )
        .await?;
    let ingested = &receipt.conversations[0];
    eprintln!("stored {} as ingest {}", ingested.call_id, ingested.ingest_id);

    let datapoint =
        client.wait_for_datapoint(&ingested.context_token, Duration::from_secs(30)).await?;
    eprintln!("datapoint {}: {} turns", datapoint.id, datapoint.turns.len());
    if let Some(metrics) = datapoint.metrics {
        eprintln!("response latency p50: {} ms", metrics.response_latency_p50_ms);
    }
    Ok(())
}
