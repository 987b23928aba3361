//! A container health check without curl: `probe http://127.0.0.1:8101/health/ready` exits 0
//! when the URL answers 2xx within two seconds, 1 otherwise. Plain HTTP/1.1 on std only, so the
//! runtime image needs no package.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

fn check(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are probed")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let address = authority
        .to_socket_addrs()
        .map_err(|error| error.to_string())?
        .next()
        .ok_or("the host has no address")?;
    let timeout = Duration::from_secs(2);
    let mut stream =
        TcpStream::connect_timeout(&address, timeout).map_err(|error| error.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|error| error.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|error| error.to_string())?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|error| error.to_string())?;
    match &head[9..10] {
        b"2" => Ok(()),
        _ => Err(format!(
            "answered {}",
            String::from_utf8_lossy(&head[9..12])
        )),
    }
}

fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:8100/health/ready".to_owned());
    match check(&url) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("probe {url}: {error}");
            ExitCode::FAILURE
        }
    }
}
