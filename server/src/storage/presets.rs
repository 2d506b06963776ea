//! Preset dictionaries for deflate: text a compressed stream may refer back to before its
//! first byte, so that the field names every stored call repeats cost a few bits instead of
//! their letters. A call of a few turns is too short for deflate to learn them from itself:
//! with these, the bench's request and body take ~510 bytes instead of ~660, its document ~380
//! instead of ~550 (docs/BENCHMARKS.md, run 22).
//!
//! They hold field names and punctuation only, from earshot's own document and from the
//! providers' documented payloads (`shared/reference/providers.md`), never a call's words.
//! Deflate codes nearer distances in fewer bits, so what most calls repeat comes last.
//!
//! A preset is part of the stored format that names it (`DOCUMENT_V2`, the `*-p1` body
//! encodings): a row compressed with one reads back only with the same bytes. Never edit one;
//! add another under a new name, and keep reading every one shipped (`presets_are_pinned`).

/// A datapoint's `document` (`DOCUMENT_V2`): the JSON of `DocumentRef`, its optional keys
/// first, then its skeleton, then its turns.
pub(super) const DOCUMENT_1: &[u8] = concat!(
    r#""raw":{},"outcome":"","speech_coverage":0.9,"unrecognized":true,"channel":1,"#,
    r#""confidence":0.8},{"role":"system","content":"","start_ms":},{"role":"tool","content":""#,
    r#"{"turns":[],"analysis":{"summary":null,"sentiment":null,"successful":null,"#,
    r#""cost_usd":null,"ended_reason":null,"agent_id":null},"tags":[],"metadata":{},"#,
    r#""metrics":{"roles":[{"role":"assistant","turn_count":,"talk_time_ms":,"word_count":},"#,
    r#"{"role":"user","turn_count":,"talk_time_ms":,"word_count":}],"#,
    r#""response_latency_p50_ms":,"response_latency_p95_ms":,"words_per_minute":,"#,
    r#""longest_monologue_ms":,"overlap_count":0,"overlap_ms":0}}"#,
    r#"{"turns":[{"role":"assistant","content":"","start_ms":0,"end_ms":},"#,
    r#"{"role":"user","content":"","start_ms":,"end_ms":},{"role":"assistant","content":""#,
)
.as_bytes();

/// A delivery's request and body compressed together (`DEFLATE_P1_WITH_REQUEST`) or a body
/// alone (`DEFLATE_P1`): the providers' payloads (LiveKit, Bland, ElevenLabs, Twilio's form,
/// Vapi, Retell), the kept request's JSON and its usual headers, then the canonical
/// conversation of Standard Webhooks deliveries and the SDKs.
pub(super) const BODY_1: &[u8] = concat!(
    // LiveKit.
    r#"{"event":"room_finished","room":{"sid":"RM_","name":"","creationTime":"#,
    r#""numParticipants":},"egressInfo":{"egressId":"EG_","roomId":"","roomName":"","#,
    r#""status":"EGRESS_COMPLETE","startedAt":"","endedAt":"","fileResults":[{"filename":"","#,
    r#""location":"","duration":"","size":""}]},"id":"EV_","createdAt":"#,
    // Bland.
    r#"{"call_id":"","c_id":"","call_length":,"corrected_duration":"","to":"+1","from":"+1","#,
    r#""inbound":false,"completed":true,"status":"completed","queue_status":"complete","#,
    r#""created_at":"","started_at":"","end_at":"","answered_by":"human","#,
    r#""call_ended_by":"ASSISTANT","record":true,"recording_url":"","summary":"","price":,"#,
    r#""variables":{},"analysis":{},"concatenated_transcript":"user: "," \n assistant: ","#,
    r#""transcripts":[{"id":,"created_at":"","text":"","user":"assistant","c_id":""},"#,
    // ElevenLabs.
    r#"{"type":"post_call_transcription","event_timestamp":,"data":{"agent_id":"agent_","#,
    r#""conversation_id":"conv_","status":"done","user_id":"","transcript":[{"role":"agent","#,
    r#""message":"","time_in_call_secs":,"tool_calls":null,"tool_results":null,"#,
    r#""feedback":null,"interrupted":false,"original_message":null,"#,
    r#""conversation_turn_metrics":null,"llm_usage":null,"source_medium":null},"#,
    r#""metadata":{"start_time_unix_secs":,"accepted_time_unix_secs":,"call_duration_secs":,"#,
    r#""cost":,"termination_reason":"","main_language":"en","phone_call":{"type":"twilio","#,
    r#""direction":"inbound","phone_number_id":"","agent_number":"+1","external_number":"+1","#,
    r#""call_sid":"CA","stream_sid":"MZ"}},"analysis":{"call_successful":"success","#,
    r#""transcript_summary":"","call_summary_title":"","evaluation_criteria_results":{},"#,
    r#""data_collection_results":{}},"conversation_initiation_client_data":{"#,
    r#""dynamic_variables":{}},"has_audio":true,"has_user_audio":true,"#,
    r#""has_response_audio":true}}"#,
    // Twilio's recording status callback (a form).
    "AccountSid=AC&CallSid=CA&RecordingSid=RE&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2F",
    "2010-04-01%2FAccounts%2F&RecordingStatus=completed&RecordingDuration=",
    "&RecordingChannels=2&RecordingStartTime=&RecordingSource=DialVerb&ErrorCode=0",
    // Vapi.
    r#"{"message":{"type":"end-of-call-report","timestamp":,"endedReason":"#,
    r#""customer-ended-call","startedAt":"","endedAt":"","cost":,"costs":[],"call":{"id":"","#,
    r#""orgId":"","type":"inboundPhoneCall","status":"ended","assistantId":"","#,
    r#""phoneNumberId":"","phoneCallProvider":"twilio","phoneCallProviderId":"CA","#,
    r#""customer":{"number":"+1"},"createdAt":"","updatedAt":""},"phoneNumber":{"number":"+1"},"#,
    r#""artifact":{"transcript":"AI: ","\nUser: ","messages":[{"role":"system","message":"","#,
    r#""time":,"secondsFromStart":0},{"role":"bot","message":"","time":,"endTime":,"#,
    r#""secondsFromStart":,"duration":,"source":""},{"role":"user","message":"","time":,"#,
    r#""endTime":,"secondsFromStart":,"duration":}],"messagesOpenAIFormatted":[],"#,
    r#""recordingUrl":"https://storage.vapi.ai/","stereoRecordingUrl":"","recording":{"#,
    r#""stereoUrl":"","mono":{"combinedUrl":"","assistantUrl":"","customerUrl":""}}},"#,
    r#""analysis":{"summary":"","successEvaluation":"true","structuredData":{}}}}"#,
    // Retell.
    r#"{"event":"call_analyzed","call":{"call_id":"call_","agent_id":"agent_","#,
    r#""agent_version":,"agent_name":"","call_type":"phone_call","call_status":"ended","#,
    r#""direction":"inbound","from_number":"+1","to_number":"+1","start_timestamp":,"#,
    r#""end_timestamp":,"duration_ms":,"disconnection_reason":"user_hangup","#,
    r#""transcript":"Agent: ","\nUser: ","transcript_object":[{"role":"agent","content":"","#,
    r#""words":[{"word":"","start":,"end":},{"word":"","start":,"end":}]},{"role":"user","#,
    r#""content":"","words":[]}],"transcript_with_tool_calls":[],"recording_url":"","#,
    r#""recording_multi_channel_url":"","public_log_url":"","call_analysis":{"#,
    r#""call_summary":"","user_sentiment":"Positive","call_successful":true,"#,
    r#""in_voicemail":false,"custom_analysis_data":{}},"call_cost":{"combined_cost":,"#,
    r#""product_costs":[],"total_duration_seconds":,"total_duration_unit_price":},"#,
    r#""latency":{},"llm_token_usage":{},"metadata":{},"retell_llm_dynamic_variables":{},"#,
    r#""telephony_identifier":{"twilio_call_sid":"CA"}}}"#,
    // The kept request (`StoredRequest`) and its usual headers.
    r#"{"url":"https://","headers":[["accept","*/*"],["accept-encoding","gzip, deflate, br"],"#,
    r#"["user-agent",""],["x-forwarded-for",""],["x-forwarded-proto","https"],"#,
    r#"["x-retell-signature","v="],["x-vapi-signature",""],["elevenlabs-signature","t="],"#,
    r#"["x-twilio-signature",""],["x-webhook-signature",""],["authorization","Bearer "],"#,
    r#"["content-type","application/x-www-form-urlencoded"],"#,
    r#"{"url":"http://","/v0/voice/webhook/","headers":[["content-type","application/json"],"#,
    r#"["webhook-id","msg_"],["webhook-timestamp",""],["webhook-signature","v1,"],"#,
    r#"["host",""],["content-length",""]]}"#,
    // The canonical conversation.
    r#"{"call_id":"","context_token":"","conversation_start_at":"","metadata":{},"#,
    r#""source_platform":"","tags":[],"transcript":[{"content":"","end_ms":,"#,
    r#""role":"assistant","timestamp_ms":0},{"content":"","end_ms":,"role":"user","#,
    r#""timestamp_ms":},{"content":""#,
)
.as_bytes();

/// `input` deflated with `preset` by a compressor of its own at deflate's best level, as any
/// encoder might have written it: what a stored row must read back from.
#[cfg(test)]
pub(super) fn deflated_elsewhere(input: &[u8], preset: &[u8]) -> Vec<u8> {
    let mut compressor = flate2::Compress::new(flate2::Compression::best(), false);
    if !preset.is_empty() {
        compressor.set_dictionary(preset).unwrap();
    }
    let mut output = Vec::with_capacity(input.len() + 64);
    let status = compressor.compress_vec(input, &mut output, flate2::FlushCompress::Finish);
    assert_eq!(status.unwrap(), flate2::Status::StreamEnd);
    output
}

#[cfg(test)]
mod tests {
    /// Rows compressed with a preset read back only with the same bytes: a change here fails
    /// this test, and the answer is a new preset, not a new pin.
    #[test]
    fn presets_are_pinned() {
        let hex = crate::crypto::sha256_hex;
        assert_eq!(
            hex(super::DOCUMENT_1),
            "728feca05c4f60152afa812429ea9c605b191ae03d678b28fec31d568b883e18",
            "DOCUMENT_1 changed"
        );
        assert_eq!(
            hex(super::BODY_1),
            "1acf7fee256e9cd14674dae762e2e80ee046c891bcfb42b34b9454ad93cc9034",
            "BODY_1 changed"
        );
        // Deflate refers back at most 32 KiB.
        assert!(super::BODY_1.len() < 32 * 1024 && super::DOCUMENT_1.len() < 32 * 1024);
    }

    /// The thread's one decompressor reads stream after stream, each with its own preset or
    /// none, and a damaged stream leaves nothing behind for the next.
    #[test]
    fn streams_inflate_one_after_another_on_one_thread() {
        use super::super::{deflate_within, inflate};
        let text = br#"{"turns":[{"role":"user","content":"a refund for a double charge"}]}"#;
        let deflated = |preset: &[u8]| {
            let mut output = Vec::with_capacity(256);
            assert!(deflate_within(text, preset, &mut output));
            output
        };
        let (with_document, with_body, alone) =
            (deflated(super::DOCUMENT_1), deflated(super::BODY_1), deflated(&[]));
        for _ in 0..2 {
            assert_eq!(inflate(&with_document, super::DOCUMENT_1).unwrap(), text);
            assert_eq!(inflate(&alone, &[]).unwrap(), text);
            assert!(inflate(&with_body[..with_body.len() / 2], super::BODY_1).is_err());
            assert_ne!(inflate(&with_body, &[]).ok().as_deref(), Some(&text[..]));
            assert_eq!(inflate(&with_body, super::BODY_1).unwrap(), text);
        }
    }
}
