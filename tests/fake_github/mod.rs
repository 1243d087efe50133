//! A fake GitHub for tests that deliver: a wiremock server on 127.0.0.1
//! that validates every request body against the operation's schema from
//! GitHub's official OpenAPI description (`tests/fixtures/github/
//! openapi-subset.json`, made by `generate.py`) and answers with the
//! official examples, keeping pull requests, issues, comments and
//! reactions as GitHub would; and smart HTTP with Basic auth in front of
//! `git http-backend` for pushes to a bare repository. Used by
//! `tests/github.rs` and `tests/fanout.rs` (many runners, one remote).

#![allow(dead_code)] // each test binary uses a different subset
#![expect(
    clippy::unwrap_used,
    reason = "fake servers' helpers: a panic there is the test failing"
)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use git_agent::forge::github::{GitHub, RetryPolicy};
use git_agent::forge::RepoId;
use serde_json::{json, Value};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const TOKEN: &str = "ghp_testTOKEN0123456789abcdefSECRET";

// ---------------------------------------------------------------------------
// The OpenAPI subset.

pub struct Operation {
    pub id: String,
    pub method: String,
    /// The path template split into segments (`{x}` matches any one).
    pub segments: Vec<String>,
    pub validator: Option<jsonschema::Validator>,
    pub status: u16,
    pub example: Value,
}

pub fn operations() -> &'static Vec<Operation> {
    static OPS: OnceLock<Vec<Operation>> = OnceLock::new();
    OPS.get_or_init(|| {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github/openapi-subset.json");
        let spec: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("subset")).expect("json");
        spec["operations"]
            .as_object()
            .expect("operations")
            .iter()
            .map(|(id, op)| {
                let validator = op["request_schema"].as_object().map(|_| {
                    let mut schema = op["request_schema"].clone();
                    // GitHub ignores unknown fields; we must not send any.
                    if schema.get("properties").is_some() {
                        schema["additionalProperties"] = json!(false);
                    }
                    jsonschema::validator_for(&schema)
                        .unwrap_or_else(|e| panic!("schema of {id}: {e}"))
                });
                Operation {
                    id: id.clone(),
                    method: op["method"].as_str().expect("method").to_string(),
                    segments: op["path"]
                        .as_str()
                        .expect("path")
                        .split('/')
                        .map(str::to_string)
                        .collect(),
                    validator,
                    status: op["response_status"].as_u64().unwrap_or(200) as u16,
                    example: op["response_example"].clone(),
                }
            })
            .collect()
    })
}

pub fn operation_for(method: &str, path: &str) -> Option<&'static Operation> {
    let segs: Vec<&str> = path.split('/').collect();
    operations().iter().find(|op| {
        op.method == method
            && op.segments.len() == segs.len()
            && op
                .segments
                .iter()
                .zip(&segs)
                .all(|(t, s)| t.starts_with('{') || t == s)
    })
}

// ---------------------------------------------------------------------------
// A fake GitHub: stateful pull requests, injected failures, a request log.

#[derive(Debug, Clone)]
pub struct Seen {
    pub op: String,
    pub path: String,
    pub query: String,
    pub auth: String,
    pub body: Value,
}

#[derive(Default)]
pub struct FakeState {
    pub seen: Vec<Seen>,
    /// (head, number, draft, base) of open pull requests.
    pub prs: Vec<(String, u64, bool, String)>,
    /// Open issues: (number, body, labels).
    pub issues: Vec<(u64, String, Vec<String>)>,
    /// Failures to answer first: (operation, template), in order.
    pub inject: VecDeque<(String, ResponseTemplate)>,
    /// Operations that always fail with this status.
    pub refuse: Vec<(String, u16)>,
    /// Operations carried out whose reply is then lost (a 502), once each.
    pub lose_reply: Vec<String>,
    pub schema_errors: Vec<String>,
    /// The server's own URL, for the absolute links GitHub gives.
    pub base: String,
    /// Comments posted: (issue or pull request number, body).
    pub comments: Vec<(u64, String)>,
    /// The repository's branches a pull request may target (GitHub
    /// refuses others); empty: any.
    pub branches: Vec<String>,
    /// Reactions added: (comment id, content).
    pub reactions: Vec<(u64, String)>,
    /// Heads of pull requests as `pulls/get` gives them: (number, sha,
    /// the head's repository); unlisted: the example's sha, `octo/hello`.
    pub pull_heads: Vec<(u64, String, String)>,
}

#[derive(Clone, Default)]
pub struct Fake(pub Arc<Mutex<FakeState>>);

impl Fake {
    pub fn state(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.0.lock().unwrap()
    }
    pub fn count(&self, op: &str) -> usize {
        self.state().seen.iter().filter(|s| s.op == op).count()
    }
    pub fn bodies(&self, op: &str) -> Vec<Value> {
        self.state()
            .seen
            .iter()
            .filter(|s| s.op == op)
            .map(|s| s.body.clone())
            .collect()
    }
}

impl Respond for Fake {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let path = req.url.path().to_string();
        let Some(op) = operation_for(req.method.as_str(), &path) else {
            self.state()
                .schema_errors
                .push(format!("unknown operation {} {path}", req.method));
            return ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}));
        };
        let body: Value = if req.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&req.body).unwrap_or(Value::Null)
        };
        // As GitHub: no User-Agent, no answer. And ours must name git-agent.
        let agents: Vec<String> = req
            .headers
            .get_all("user-agent")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect();
        if !agents.iter().any(|a| a.starts_with("git-agent/")) {
            self.state()
                .schema_errors
                .push(format!("no git-agent User-Agent: {agents:?}"));
            return ResponseTemplate::new(403).set_body_json(json!({
                "message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header."
            }));
        }
        // As GitHub: a body (PR, issue, comment) is at most 65,536 characters.
        if body["body"]
            .as_str()
            .is_some_and(|t| t.chars().count() > 65_536)
        {
            return ResponseTemplate::new(422).set_body_json(json!({
                "message": "Validation Failed",
                "errors": [{"resource": "Issue", "field": "body", "code": "custom",
                    "message": "body is too long (maximum is 65536 characters)"}],
            }));
        }
        let mut st = self.state();
        if let Some(v) = &op.validator {
            for e in v.iter_errors(&body) {
                st.schema_errors
                    .push(format!("{}: {e} at {} in {body}", op.id, e.instance_path));
            }
        }
        st.seen.push(Seen {
            op: op.id.clone(),
            path: path.clone(),
            query: req.url.query().unwrap_or("").to_string(),
            auth: req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
            body: body.clone(),
        });
        if let Some(pos) = st.inject.iter().position(|(o, _)| *o == op.id) {
            let (_, t) = st.inject.remove(pos).expect("injected");
            return t;
        }
        if let Some((_, status)) = st.refuse.iter().find(|(o, _)| *o == op.id) {
            return ResponseTemplate::new(*status).set_body_json(
                json!({"message": "Resource not accessible by personal access token"}),
            );
        }
        let mut example = op.example.clone();
        match op.id.as_str() {
            "pulls/list" => {
                let head = req
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "head")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                let branch = head.split_once(':').map(|(_, b)| b).unwrap_or(&head);
                let template = example[0].clone();
                example = Value::Array(
                    st.prs
                        .iter()
                        .filter(|(h, _, _, _)| h == branch)
                        .map(|(_, n, d, b)| pr_json(&template, *n, *d, b))
                        .collect(),
                );
            }
            "pulls/create" => {
                // As GitHub: the base must be a branch, never `HEAD`.
                if matches!(body["base"].as_str(), None | Some("" | "HEAD")) {
                    return ResponseTemplate::new(422).set_body_json(json!({
                        "message": "Validation Failed",
                        "errors": [{"resource": "PullRequest", "field": "base", "code": "invalid"}],
                    }));
                }
                // As GitHub: the base must exist on the repository.
                if !st.branches.is_empty()
                    && !st
                        .branches
                        .iter()
                        .any(|b| b == body["base"].as_str().unwrap_or(""))
                {
                    return ResponseTemplate::new(422).set_body_json(json!({
                        "message": "Validation Failed",
                        "errors": [{"resource": "PullRequest", "field": "base", "code": "invalid"}],
                    }));
                }
                // As GitHub: one open pull request per head and base.
                let head = body["head"].as_str().unwrap_or("");
                let base = body["base"].as_str().unwrap_or("");
                if st.prs.iter().any(|p| p.0 == head && p.3 == base) {
                    return ResponseTemplate::new(422).set_body_json(json!({
                        "message": "Validation Failed",
                        "errors": [{"resource": "PullRequest", "code": "custom",
                            "message": format!("A pull request already exists for octo:{head}.")}],
                    }));
                }
                let n = 1347 + st.prs.len() as u64;
                let draft = body["draft"].as_bool().unwrap_or(false);
                st.prs.push((head.into(), n, draft, base.into()));
                example = pr_json(&example, n, draft, base);
            }
            "pulls/update" => {
                let n: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
                // As GitHub: a new base moves the pull request there.
                if let Some(new_base) = body["base"].as_str() {
                    if let Some(pr) = st.prs.iter_mut().find(|p| p.1 == n) {
                        pr.3 = new_base.to_string();
                    }
                }
                let (draft, base) = st
                    .prs
                    .iter()
                    .find(|p| p.1 == n)
                    .map(|p| (p.2, p.3.clone()))
                    .unwrap_or_default();
                example = pr_json(&example, n, draft, &base);
            }
            "pulls/get" => {
                let n: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
                let Some((head, _, draft, base)) = st.prs.iter().find(|p| p.1 == n).cloned() else {
                    return ResponseTemplate::new(404)
                        .set_body_json(json!({"message": "Not Found"}));
                };
                example = pr_json(&example, n, draft, &base);
                example["head"]["ref"] = json!(head);
                example["head"]["repo"]["full_name"] = json!("octo/hello");
                if let Some((_, sha, repo)) = st.pull_heads.iter().find(|h| h.0 == n) {
                    example["head"]["sha"] = json!(sha);
                    example["head"]["repo"]["full_name"] = json!(repo);
                }
            }
            "reactions/create-for-issue-comment" => {
                let id: u64 = path
                    .split('/')
                    .nth(6)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let content = body["content"].as_str().unwrap_or("").to_string();
                example["content"] = json!(content);
                st.reactions.push((id, content));
            }
            // GitHub lists pull requests among issues (with `pull_request`).
            "issues/list-for-repo" => {
                let label = req
                    .url
                    .query_pairs()
                    .find(|(k, _)| k == "labels")
                    .map(|(_, v)| v.into_owned());
                let template = example[0].clone();
                let issues = st
                    .issues
                    .iter()
                    .filter(|(_, _, labels)| label.as_ref().map_or(true, |l| labels.contains(l)))
                    .map(|(n, body, labels)| issue_json(&template, *n, body, labels));
                let prs = st.prs.iter().map(|(_, n, _, _)| {
                    let mut v = issue_json(&template, *n, "", &["needs-human".into()]);
                    v["pull_request"] = template["pull_request"].clone();
                    v
                });
                example = Value::Array(issues.chain(prs).collect());
            }
            "issues/create-comment" => {
                let n: u64 = path
                    .split('/')
                    .nth(5)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let text = body["body"].as_str().unwrap_or("").to_string();
                example["body"] = json!(text);
                st.comments.push((n, text));
            }
            "issues/list-comments" => {
                let n: u64 = path
                    .split('/')
                    .nth(5)
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let template = example[0].clone();
                example = Value::Array(
                    st.comments
                        .iter()
                        .filter(|(on, _)| *on == n)
                        .map(|(_, text)| {
                            let mut c = template.clone();
                            c["body"] = json!(text);
                            c
                        })
                        .collect(),
                );
            }
            "issues/create" => {
                let n = 2000 + st.issues.len() as u64;
                let body_text = body["body"].as_str().unwrap_or("").to_string();
                let labels: Vec<String> = body["labels"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|l| l.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                example = issue_json(&example, n, &body_text, &labels);
                st.issues.push((n, body_text, labels));
            }
            "issues/update" => {
                let n: u64 = path.rsplit('/').next().unwrap().parse().unwrap();
                let body_text = body["body"].as_str().unwrap_or("").to_string();
                let issue = st
                    .issues
                    .iter_mut()
                    .find(|i| i.0 == n)
                    .expect("a known issue");
                issue.1 = body_text.clone();
                let labels = issue.2.clone();
                example = issue_json(&example, n, &body_text, &labels);
            }
            _ => {}
        }
        if let Some(pos) = st.lose_reply.iter().position(|o| *o == op.id) {
            st.lose_reply.remove(pos);
            return ResponseTemplate::new(502).set_body_json(json!({"message": "Server Error"}));
        }
        if matches!(
            op.id.as_str(),
            "pulls/list" | "issues/list-for-repo" | "issues/list-comments"
        ) {
            return paginated(req, example, &st.base);
        }
        ResponseTemplate::new(op.status).set_body_json(example)
    }
}

/// A listing as GitHub pages it: `per_page` (default 30, at most 100) items
/// of page `page` (from 1), and a `Link` header with `rel="next"` (an
/// absolute URL, as GitHub gives) while more remain.
pub fn paginated(req: &Request, items: Value, base: &str) -> ResponseTemplate {
    let param = |name: &str| {
        req.url
            .query_pairs()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    let per_page = param("per_page").unwrap_or(30).clamp(1, 100);
    let page = param("page").unwrap_or(1).max(1);
    let all = items.as_array().cloned().unwrap_or_default();
    let slice: Vec<Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let mut reply = ResponseTemplate::new(200).set_body_json(Value::Array(slice));
    if page * per_page < all.len() {
        let mut next = wiremock::http::Url::parse(&format!("{base}{}", req.url.path()))
            .expect("the server's URL");
        let kept: Vec<(String, String)> = req
            .url
            .query_pairs()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        next.query_pairs_mut()
            .extend_pairs(kept)
            .append_pair("page", &(page + 1).to_string());
        reply = reply.insert_header("link", format!("<{next}>; rel=\"next\"").as_str());
    }
    reply
}

pub fn pr_json(template: &Value, number: u64, draft: bool, base: &str) -> Value {
    let mut v = template.clone();
    v["number"] = json!(number);
    v["base"]["ref"] = json!(base);
    v["draft"] = json!(draft);
    v["html_url"] = json!(format!("https://github.com/octo/hello/pull/{number}"));
    v
}

pub fn issue_json(template: &Value, number: u64, body: &str, labels: &[String]) -> Value {
    let mut v = template.clone();
    v.as_object_mut().unwrap().remove("pull_request");
    v["number"] = json!(number);
    v["body"] = json!(body);
    v["labels"] = json!(labels
        .iter()
        .map(|l| json!({"name": l}))
        .collect::<Vec<_>>());
    v["html_url"] = json!(format!("https://github.com/octo/hello/issues/{number}"));
    v
}

pub async fn fake_github() -> (MockServer, Fake) {
    let server = MockServer::start().await;
    let fake = Fake::default();
    {
        let mut st = fake.state();
        st.base = server.uri();
        st.branches = vec!["main".into(), "release".into()];
    }
    Mock::given(wiremock::matchers::any())
        .respond_with(fake.clone())
        .mount(&server)
        .await;
    (server, fake)
}

pub fn client(server: &MockServer) -> GitHub {
    GitHub::new(
        &server.uri(),
        RepoId {
            host: "github.com".into(),
            owner: "octo".into(),
            repo: "hello".into(),
        },
        TOKEN.into(),
        RetryPolicy {
            retries: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_secs(5),
        },
    )
    .expect("client")
}

pub fn assert_clean(fake: &Fake) {
    let st = fake.state();
    assert!(st.schema_errors.is_empty(), "{:#?}", st.schema_errors);
    for s in &st.seen {
        assert_eq!(s.auth, format!("Bearer {TOKEN}"), "auth of {}", s.op);
        assert!(s.path.starts_with("/repos/octo/hello/"), "{}", s.path);
    }
}

// ---------------------------------------------------------------------------
// Smart HTTP with Basic auth in front of `git http-backend`.

pub struct GitServer {
    pub port: u16,
    /// `Authorization` headers seen (to prove the token was sent).
    pub auths: Arc<Mutex<Vec<String>>>,
}

pub fn real_git() -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "command -v git"])
        .output()
        .expect("which git");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub fn git_http_server(project_root: PathBuf, token: &'static str) -> GitServer {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let auths = Arc::new(Mutex::new(Vec::new()));
    let seen = auths.clone();
    let git = real_git();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let root = project_root.clone();
            let seen = seen.clone();
            let git = git.clone();
            std::thread::spawn(move || {
                let _ = serve(stream, &root, token, &seen, &git);
            });
        }
    });
    GitServer { port, auths }
}

pub fn serve(
    stream: TcpStream,
    root: &Path,
    token: &str,
    seen: &Mutex<Vec<String>>,
    git: &Path,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = header("content-length") {
        let len: usize = len.parse().unwrap_or(0);
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    let auth = header("authorization").unwrap_or_default();
    if !auth.is_empty() {
        seen.lock().unwrap().push(auth.clone());
    }
    let expected = {
        use base64_lite::encode;
        format!("Basic {}", encode(&format!("x-access-token:{token}")))
    };
    if auth != expected {
        out.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
        return Ok(());
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new(git)
        .arg("http-backend")
        .env_clear()
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REMOTE_USER", "x-access-token")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header("content-encoding").unwrap_or_default(),
        )
        .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = cgi.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = cgi.wait_with_output()?;
    let _ = writer.join();
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)))
        .unwrap_or((raw.len(), 0));
    let head = String::from_utf8_lossy(&raw[..split.0]).to_string();
    let content = &raw[(split.0 + split.1).min(raw.len())..];
    let mut status = "200 OK".to_string();
    let mut response = String::new();
    for h in head.lines() {
        if let Some(s) = h.strip_prefix("Status:") {
            status = s.trim().to_string();
        } else if !h.trim().is_empty() {
            response.push_str(h.trim_end());
            response.push_str("\r\n");
        }
    }
    out.write_all(
        format!(
            "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n",
            content.len()
        )
        .as_bytes(),
    )?;
    out.write_all(content)?;
    out.flush()
}

/// Base64 for the Basic auth header (no dependency for ten lines).
pub mod base64_lite {
    pub fn encode(s: &str) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let b = s.as_bytes();
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

/// Every file under `dir`, recursively, that contains `needle`.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                if let Ok(bytes) = std::fs::read(&p) {
                    if bytes.windows(needle.len()).any(|w| w == needle) {
                        found.push(p);
                    }
                }
            }
        }
    }
    found
}

/// A bare repository `<dir>/octo/hello.git` that accepts pushes, served
/// over smart HTTP with Basic auth for [`TOKEN`]: `(its path, the server)`.
pub fn bare_remote(dir: &Path) -> (PathBuf, GitServer) {
    let root = dir.join("remote");
    std::fs::create_dir_all(root.join("octo")).unwrap();
    let remote = root.join("octo/hello.git");
    let git = |args: &[&str], cwd: &Path| {
        let st = Command::new(real_git())
            .args(args)
            .current_dir(cwd)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .status()
            .unwrap();
        assert!(st.success(), "git {args:?}");
    };
    git(
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            remote.to_str().unwrap(),
        ],
        dir,
    );
    git(&["config", "http.receivepack", "true"], &remote);
    let server = git_http_server(root, TOKEN);
    (remote, server)
}
