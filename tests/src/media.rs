//! Stand-ins for what a server fetches or leaves behind: a loopback recording host, the files
//! under a data directory, and audio no generator makes.

/// A loopback HTTP server standing in for a provider's recording host: serves `body` as WAV at
/// `path`, and returns its address.
pub async fn serve_audio(path: &'static str, body: Vec<u8>) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        path,
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "audio/wav")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// `frames` frames of MPEG-1 Layer III silence (128 kbit/s, 44.1 kHz, mono): all-zero side
/// information and main data decode to silence, 1152 samples a frame.
pub fn silent_mp3(frames: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(frames * 417);
    for _ in 0..frames {
        bytes.extend_from_slice(&[0xFF, 0xFB, 0x90, 0xC0]);
        bytes.extend_from_slice(&[0; 413]);
    }
    bytes
}
