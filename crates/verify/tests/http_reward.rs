//! `kind = "http"` against a real HTTP server on a local port (a `TcpListener` thread that
//! speaks HTTP/1.1): rewards in order, row fields seen by the server, retries after 503, no
//! retry after 400, timeouts, refused connections, malformed replies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aha_verify::{BatchReward, Error, HttpReward, Reward, RewardInput, RewardSpec};
use serde_json::{json, Map, Value};

/// What the server does with one request: status, body, and a delay before answering.
type Handler = dyn Fn(usize, &Value) -> (u16, String, Duration) + Send + Sync;

struct Server {
    url: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

/// Serves `handler` (called with the request's 0-based number and its JSON body) until the
/// test process ends; one request per connection.
fn serve(
    handler: impl Fn(usize, &Value) -> (u16, String, Duration) + Send + Sync + 'static,
) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/score", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    let handler: Arc<Handler> = Arc::new(handler);
    let count = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (handler, seen, count) =
                (Arc::clone(&handler), Arc::clone(&seen), Arc::clone(&count));
            std::thread::spawn(move || {
                let body = read_request(&stream);
                seen.lock().unwrap().push(body.clone());
                let (status, reply, delay) = handler(count.fetch_add(1, Ordering::SeqCst), &body);
                std::thread::sleep(delay);
                let _ = write!(
                    &stream,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            });
        }
    });
    Server { url, requests }
}

fn read_request(stream: &TcpStream) -> Value {
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// 1 when the completion is the item's answer, 0 when not, null without an answer.
fn exact(request: &Value) -> String {
    let rewards: Vec<Value> = request["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| match &item["answer"] {
            Value::Null => Value::Null,
            a => json!(f64::from(u8::from(item["completion"] == *a))),
        })
        .collect();
    json!({ "rewards": rewards }).to_string()
}

fn rows() -> Vec<Map<String, Value>> {
    [
        json!({"answer": "4", "source": "gsm8k"}),
        json!({"answer": "5"}),
        json!({}),
    ]
    .into_iter()
    .map(|v| v.as_object().cloned().unwrap())
    .collect()
}

fn inputs(rows: &[Map<String, Value>]) -> Vec<RewardInput<'_>> {
    rows.iter()
        .enumerate()
        .map(|(id, row)| RewardInput {
            id,
            prompt: "2+2?",
            completion: "4",
            row,
        })
        .collect()
}

fn client(url: &str, timeout_ms: u64, retries: u32) -> HttpReward {
    HttpReward::new(
        url,
        Duration::from_millis(timeout_ms),
        retries,
        Duration::from_millis(50),
    )
}

fn http_error(err: Error) -> String {
    match err {
        Error::Http { .. } => err.to_string(),
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

#[test]
fn rewards_come_back_in_order_and_the_server_sees_each_row() {
    let server = serve(|_, req| (200, exact(req), Duration::ZERO));
    let reward = Reward::new(vec![RewardSpec::Http {
        weight: 2.0,
        url: server.url.clone(),
        timeout_s: 10.0,
        retries: 3,
        backoff_s: 0.05,
    }])
    .unwrap();
    let rows = rows();
    let refs = vec![aha_verify::Reference::default(); 3];
    let scored = reward.score_batch(&inputs(&rows), &refs).unwrap();
    let got: Vec<Option<f32>> = scored.iter().map(|s| s.reward).collect();
    assert_eq!(got, [Some(2.0), Some(0.0), None], "null is excluded, not 0");
    let requests = server.requests.lock().unwrap();
    assert_eq!(requests.len(), 1, "one request per batch");
    assert_eq!(
        requests[0]["items"][0],
        json!({"answer": "4", "source": "gsm8k", "prompt": "2+2?", "completion": "4"})
    );
}

#[test]
fn a_503_is_retried_and_a_400_is_not() {
    let server = serve(|n, req| match n {
        0 => (503, "warming up".into(), Duration::ZERO),
        _ => (200, exact(req), Duration::ZERO),
    });
    let rows = rows();
    let j = client(&server.url, 5000, 3)
        .score_batch(&inputs(&rows))
        .unwrap();
    assert_eq!(j[0].reward, Some(1.0));
    assert_eq!(server.requests.lock().unwrap().len(), 2);

    let down = serve(|_, _| (503, "<h1>down for maintenance</h1>".into(), Duration::ZERO));
    let msg = http_error(
        client(&down.url, 5000, 2)
            .score_batch(&inputs(&rows))
            .unwrap_err(),
    );
    assert_eq!(
        msg,
        format!(
            "reward server {}: HTTP 503: <h1>down for maintenance</h1> (a batch of 3, 3 attempts)",
            down.url
        )
    );

    let refuses = serve(|_, _| (400, r#"{"error": "no field tests"}"#.into(), Duration::ZERO));
    let msg = http_error(
        client(&refuses.url, 5000, 3)
            .score_batch(&inputs(&rows))
            .unwrap_err(),
    );
    assert!(
        msg.ends_with(r#"HTTP 400: {"error": "no field tests"} (a batch of 3, 1 attempt)"#),
        "{msg}"
    );
    assert_eq!(refuses.requests.lock().unwrap().len(), 1);
}

#[test]
fn timeouts_and_refused_connections_are_retried_then_reported() {
    let slow = serve(|_, req| (200, exact(req), Duration::from_secs(3)));
    let rows = rows();
    let t = Instant::now();
    let msg = http_error(
        client(&slow.url, 300, 1)
            .score_batch(&inputs(&rows))
            .unwrap_err(),
    );
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(
        msg.contains("no reply within 300ms") && msg.ends_with("(a batch of 3, 2 attempts)"),
        "{msg}"
    );

    // A port that was just free: nothing listens.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/score");
    let msg = http_error(
        client(&url, 1000, 2)
            .score_batch(&inputs(&rows))
            .unwrap_err(),
    );
    assert!(msg.starts_with(&format!("reward server {url}: ")), "{msg}");
    assert!(msg.ends_with("(a batch of 3, 3 attempts)"), "{msg}");
}

#[test]
fn malformed_replies_and_specs_are_clear_errors() {
    let short = serve(|_, _| (200, r#"{"rewards": [1, 0]}"#.into(), Duration::ZERO));
    let rows = rows();
    let msg = http_error(
        client(&short.url, 5000, 3)
            .score_batch(&inputs(&rows))
            .unwrap_err(),
    );
    assert!(
        msg.contains(
            r#"HTTP 200 but 2 rewards for 3 items: {"rewards": [1, 0]} (a batch of 3, 1 attempt)"#
        ),
        "{msg}"
    );
    let specs = vec![RewardSpec::Http {
        weight: 1.0,
        url: "https://judge.example/score".into(),
        timeout_s: 60.0,
        retries: 3,
        backoff_s: 0.5,
    }];
    let err = Reward::check(&specs).unwrap_err().to_string();
    assert!(err.contains("must start with http://"), "{err}");
    let cfg: toml::Table = toml::from_str(
        "[[reward]]\nkind = \"http\"\nweight = 1.0\nurl = \"http://localhost:8000/score\"\n",
    )
    .unwrap();
    let specs: Vec<RewardSpec> = cfg["reward"].clone().try_into().unwrap();
    assert!(matches!(
        &specs[0],
        RewardSpec::Http { timeout_s, retries: 3, .. } if *timeout_s == 60.0
    ));
}
