//! The bounded fuzz run of the agent handshake's decoders (`tunnel::protocol`, read through
//! `kuboard_raft::framing` as the agent listener reads them): the hello and the report an agent
//! sends, and the verdict a replica answers. Mutations of valid encodings for
//! `KUBOARD_FUZZ_SECONDS` (default 3 s); none may panic, and no decode may be bigger than its limit.

use kuboard_raft::framing::{encode_frame, read_record};
use kuboard_raft::fuzzing::{budget, run};

use crate::clusters::cluster_registry::ClusterCredentials;
use crate::tunnel::protocol::{Hello, Report, Verdict, HELLO_LIMIT, MAGIC, REPORT_LIMIT, VERSION};

fn seeds() -> Vec<Vec<u8>> {
    let hello = Hello {
        magic: MAGIC.to_string(),
        version: VERSION,
        cluster: "prod".to_string(),
        token: "a".repeat(43),
    };
    let report = Report {
        endpoints: vec!["https://10.96.0.1:443".to_string()],
        credentials: ClusterCredentials {
            token: Some("t".repeat(20)),
            client_certificate: None,
            client_key: None,
            ca_certificate: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_string()),
        },
        agent_version: "1.0.0".to_string(),
    };
    let mut hello_then_report = encode_frame(&hello, HELLO_LIMIT).expect("encode");
    hello_then_report.extend(encode_frame(&report, REPORT_LIMIT).expect("encode"));
    vec![
        hello_then_report,
        encode_frame(
            &Verdict::Accepted {
                replica: "r1".to_string(),
            },
            HELLO_LIMIT,
        )
        .expect("encode"),
        encode_frame(
            &Verdict::Refused {
                reason: "wrong token".to_string(),
            },
            HELLO_LIMIT,
        )
        .expect("encode"),
    ]
}

fn agent_handshake(data: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        // As the replica reads an agent: the hello, then the report.
        let mut stream = data;
        if read_record::<Hello, _>(&mut stream, HELLO_LIMIT).await.is_ok() {
            let _ = read_record::<Report, _>(&mut stream, REPORT_LIMIT).await;
        }
        // As the agent reads the replica's verdict.
        let _ = read_record::<Verdict, _>(&mut &data[..], HELLO_LIMIT).await;
    });
}

#[test]
fn agent_handshake_frames_never_panic_the_decoders() {
    let summary = run(
        "agent_handshake",
        &seeds(),
        budget(),
        2_000,
        50_000_000,
        agent_handshake,
    );
    assert!(summary.inputs >= 2_000);
}
