//! The egress allowlist (`sandbox.network: {allow: [...]}`): a step runs in
//! a network namespace of its own with only loopback, and its one way out
//! is an HTTP proxy git-agent runs, which lets through `CONNECT host:port`
//! (and plain `http://` requests) to the allowed endpoints only.
//!
//! The proxy's listening socket lives *inside* the step's namespace: the
//! child, between fork and exec, creates it on `127.0.0.1:PROXY_PORT`
//! there and hands it to git-agent over a socket pair (`SCM_RIGHTS`).
//! git-agent accepts on it — connections from inside the namespace — and
//! connects out from its own namespace. No helper process, no capability
//! in the host's namespace, a fixed port (each namespace is private).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::debug;

use crate::model::sandbox::Endpoint;

/// Where the proxy listens inside each step's network namespace.
pub const PROXY_PORT: u16 = 3128;

/// Longest request head the proxy reads before it gives up on a client.
const HEAD_LIMIT: usize = 16 * 1024;

/// The proxy URL agents and checks are given (`HTTPS_PROXY` and friends).
pub fn proxy_url() -> String {
    format!("http://127.0.0.1:{PROXY_PORT}")
}

/// The socket pair over which the child hands over its listener.
pub struct Handover {
    parent: OwnedFd,
    child: Option<OwnedFd>,
}

impl Handover {
    pub fn new() -> io::Result<Handover> {
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two descriptors into the array.
        let made = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if made != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both were just created and are owned only here.
        let (parent, child) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Handover {
            parent,
            child: Some(child),
        })
    }

    /// The descriptor the forked child sends on.
    pub fn child_fd(&self) -> RawFd {
        self.child.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// Closes git-agent's copy of the child's end (after the spawn).
    pub fn close_child(&mut self) {
        self.child = None;
    }

    /// The listener the child sent (it did before its command's exec, so
    /// it is there once the spawn returned).
    pub fn receive(&self) -> io::Result<std::net::TcpListener> {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut control = [0u64; 8];
        // SAFETY: a zeroed msghdr pointing at local buffers of the given sizes.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: recvmsg fills the buffers described by `msg`.
        let n = unsafe {
            libc::recvmsg(
                self.parent.as_raw_fd(),
                &raw mut msg,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the control buffer was filled by the kernel above.
        let fd = unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
            if cmsg.is_null()
                || (*cmsg).cmsg_level != libc::SOL_SOCKET
                || (*cmsg).cmsg_type != libc::SCM_RIGHTS
            {
                return Err(io::Error::other("the step sent no proxy listener"));
            }
            std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>())
        };
        // SAFETY: SCM_RIGHTS gave this process a new descriptor it owns.
        let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        listener.set_nonblocking(true)?;
        Ok(listener)
    }
}

/// In the child, inside its new network namespace with `lo` up: listens on
/// `127.0.0.1:PROXY_PORT` and sends the socket over `channel`.
///
/// # Safety
/// Only between fork and exec: raw system calls on stack buffers.
pub unsafe fn hand_over_listener(channel: RawFd) -> io::Result<()> {
    let sock = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    if sock < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut addr: libc::sockaddr_in = std::mem::zeroed();
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_port = PROXY_PORT.to_be();
    addr.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
    let bound = libc::bind(
        sock,
        (&raw const addr).cast(),
        std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
    );
    if bound != 0 || libc::listen(sock, 128) != 0 {
        let err = io::Error::last_os_error();
        libc::close(sock);
        return Err(err);
    }
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 8];
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
    let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
    (*cmsg).cmsg_level = libc::SOL_SOCKET;
    (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), sock);
    let sent = libc::sendmsg(channel, &raw const msg, 0);
    let err = io::Error::last_os_error();
    libc::close(sock);
    if sent != 1 {
        return Err(err);
    }
    Ok(())
}

/// Requests the proxy refused, as `host:port`, for the step's record.
pub type Refused = Arc<Mutex<Vec<String>>>;

/// Serves the proxy on `listener` until the returned task is aborted.
pub fn serve(
    listener: std::net::TcpListener,
    allow: Arc<Vec<Endpoint>>,
) -> io::Result<(tokio::task::JoinHandle<()>, Refused)> {
    let listener = TcpListener::from_std(listener)?;
    let refused: Refused = Arc::default();
    let log = refused.clone();
    let task = tokio::spawn(async move {
        let mut clients = tokio::task::JoinSet::new();
        while let Ok((client, _)) = listener.accept().await {
            clients.spawn(handle(client, allow.clone(), log.clone()));
            // Reap finished connections as we go.
            while clients.try_join_next().is_some() {}
        }
    });
    Ok((task, refused))
}

/// What a client asked for.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    /// `CONNECT` (a tunnel) rather than a plain request to forward.
    tunnel: bool,
}

/// One client: read the head, decide, then tunnel or forward.
async fn handle(mut client: TcpStream, allow: Arc<Vec<Endpoint>>, refused: Refused) {
    let Ok(head) = read_head(&mut client).await else {
        return;
    };
    let Some(target) = target_of(&head) else {
        let _ = client
            .write_all(
                b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            )
            .await;
        return;
    };
    if !allow.iter().any(|e| e.allows(&target.host, target.port)) {
        let who = format!("{}:{}", target.host, target.port);
        debug!(%who, "egress refused");
        if let Ok(mut list) = refused.lock() {
            if list.len() < 100 && !list.contains(&who) {
                list.push(who.clone());
            }
        }
        let body = format!("git-agent: {who} is not in sandbox.network.allow\n");
        let reply = format!(
            "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let _ = client.write_all(reply.as_bytes()).await;
        return;
    }
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    let Ok(mut upstream) = TcpStream::connect((host, target.port)).await else {
        let _ = client
            .write_all(
                b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            )
            .await;
        return;
    };
    if target.tunnel {
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    } else if upstream.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// The request head, up to and including the blank line.
async fn read_head(client: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = client.read(&mut buf).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() > HEAD_LIMIT {
            return Err(io::Error::other("request head too long"));
        }
    }
}

/// `CONNECT host:port HTTP/1.1` or `METHOD http://host[:port]/... HTTP/1.1`.
fn target_of(head: &[u8]) -> Option<Target> {
    let line = head.split(|&b| b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let method = parts.next()?;
    let uri = parts.next()?;
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    if method.eq_ignore_ascii_case("CONNECT") {
        let (host, port) = split_host_port(uri)?;
        return Some(Target {
            host,
            port: port?,
            tunnel: true,
        });
    }
    let rest = uri.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None;
    }
    let (host, port) = split_host_port(authority)?;
    Some(Target {
        host,
        port: port.unwrap_or(80),
        tunnel: false,
    })
}

/// `host`, `host:port`, `[v6]:port`; the port `None` when absent.
fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']')?;
        (host, rest.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse().ok().filter(|p: &u16| *p > 0)?),
        None => None,
    };
    Some((host.to_ascii_lowercase(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_read_from_the_request_line() {
        let t = |s: &str| target_of(s.as_bytes());
        assert_eq!(
            t("CONNECT api.example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Target {
                host: "api.example.com".into(),
                port: 443,
                tunnel: true
            })
        );
        assert_eq!(
            t("GET http://127.0.0.2:8080/x?y HTTP/1.1\r\n\r\n"),
            Some(Target {
                host: "127.0.0.2".into(),
                port: 8080,
                tunnel: false
            })
        );
        assert_eq!(
            t("GET http://Example.com/ HTTP/1.1\r\n\r\n").map(|t| t.port),
            Some(80)
        );
        assert_eq!(
            t("CONNECT [::1]:22 HTTP/1.1\r\n\r\n").map(|t| t.host),
            Some("::1".into())
        );
        for bad in [
            "CONNECT example.com HTTP/1.1\r\n\r\n",
            "GET /local HTTP/1.1\r\n\r\n",
            "GET https://example.com/ HTTP/1.1\r\n\r\n",
            "GET http://user@evil.com@example.com/ HTTP/1.1\r\n\r\n",
            "CONNECT example.com:0 HTTP/1.1\r\n\r\n",
            "garbage",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }
}
