//! A SOCKS5 tunnel (RFC 1928), with user name and password authentication
//! (RFC 1929) when the proxy URL has credentials. A refusal is reported as
//! [`Error::Proxy`] with the HTTP status an HTTP proxy would answer for the
//! same reason, so that a program (and the reconnecting client) handles
//! both kinds alike: 407 for credentials, 403 for a rule, 502 or 504 when
//! the server cannot be reached.

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::time::Instant;

use super::connect::{io_error, left};
use super::handshake::Target;
use crate::Error;

/// Asks the SOCKS5 proxy on `tcp` to connect to `target`, within
/// `deadline`. With `remote_dns` the proxy resolves a host name; without,
/// it is resolved here first.
pub(crate) fn connect(
    tcp: &TcpStream,
    target: &Target,
    credentials: Option<&(String, String)>,
    remote_dns: bool,
    deadline: Instant,
) -> Result<(), Error> {
    // The request is built first: a name too long fails before any byte.
    let mut request = vec![5, 1, 0];
    let ip = match target.host.parse::<IpAddr>() {
        Ok(ip) => Some(ip),
        Err(_) if remote_dns => None,
        Err(_) => Some(
            (target.host.as_str(), target.port)
                .to_socket_addrs()?
                .next()
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        "the host name resolved to no address",
                    )
                })?
                .ip(),
        ),
    };
    match ip {
        Some(IpAddr::V4(v4)) => {
            request.push(1);
            request.extend_from_slice(&v4.octets());
        }
        Some(IpAddr::V6(v6)) => {
            request.push(4);
            request.extend_from_slice(&v6.octets());
        }
        None => {
            let name = target.host.as_bytes();
            let len = u8::try_from(name.len())
                .map_err(|_| Error::InvalidInput("a host name over 255 bytes for socks5h"))?;
            request.push(3);
            request.push(len);
            request.extend_from_slice(name);
        }
    }
    request.extend_from_slice(&target.port.to_be_bytes());

    tcp.set_write_timeout(Some(left(deadline)?))?;
    let methods: &[u8] = match credentials {
        Some(_) => &[5, 2, 0, 2],
        None => &[5, 1, 0],
    };
    send(tcp, methods)?;
    let mut chosen = [0u8; 2];
    receive(tcp, &mut chosen, deadline)?;
    match (chosen, credentials) {
        ([5, 0], _) => {}
        ([5, 2], Some((user, password))) => {
            let (u, p) = (user.as_bytes(), password.as_bytes());
            let (Ok(ulen), Ok(plen)) = (u8::try_from(u.len()), u8::try_from(p.len())) else {
                return Err(Error::InvalidInput(
                    "a socks5 user name or password over 255 bytes",
                ));
            };
            let mut auth = vec![1, ulen];
            auth.extend_from_slice(u);
            auth.push(plen);
            auth.extend_from_slice(p);
            send(tcp, &auth)?;
            let mut status = [0u8; 2];
            receive(tcp, &mut status, deadline)?;
            if status[1] != 0 {
                log::debug!("client: the socks5 proxy refused the credentials");
                return Err(Error::Proxy { status: 407 });
            }
        }
        ([5, 0xFF], _) | ([5, 2], None) => {
            log::debug!("client: the socks5 proxy accepts none of our methods");
            return Err(Error::Proxy { status: 407 });
        }
        _ => return Err(Error::Protocol("socks5: the proxy's answer is not socks5")),
    }

    send(tcp, &request)?;
    let mut reply = [0u8; 4];
    receive(tcp, &mut reply, deadline)?;
    if reply[0] != 5 {
        return Err(Error::Protocol("socks5: the proxy's answer is not socks5"));
    }
    if reply[1] != 0 {
        log::debug!(
            "client: the socks5 proxy refused the tunnel with {}",
            reply[1]
        );
        return Err(Error::Proxy {
            status: http_status(reply[1]),
        });
    }
    // The address the proxy bound, then its port: read and dropped.
    let skip = match reply[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        3 => {
            let mut len = [0u8; 1];
            receive(tcp, &mut len, deadline)?;
            usize::from(len[0]) + 2
        }
        _ => return Err(Error::Protocol("socks5: an unknown address type")),
    };
    receive(tcp, &mut vec![0u8; skip], deadline)?;
    Ok(())
}

/// The HTTP status an HTTP proxy answers for a SOCKS5 reply code.
fn http_status(reply: u8) -> u16 {
    match reply {
        2 => 403,
        6 => 504,
        _ => 502,
    }
}

fn send(tcp: &TcpStream, bytes: &[u8]) -> Result<(), Error> {
    let mut s = tcp;
    s.write_all(bytes).map_err(io_error)
}

/// Reads exactly `buf.len()` bytes, each read bounded by what is left
/// before `deadline`.
fn receive(tcp: &TcpStream, buf: &mut [u8], deadline: Instant) -> Result<(), Error> {
    let mut s = tcp;
    let mut at = 0;
    while at < buf.len() {
        tcp.set_read_timeout(Some(left(deadline)?))?;
        match s.read(&mut buf[at..]) {
            Ok(0) => {
                return Err(Error::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the socks5 proxy closed the connection",
                )))
            }
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes_map_to_http_statuses() {
        assert_eq!(http_status(2), 403);
        assert_eq!(http_status(5), 502);
        assert_eq!(http_status(6), 504);
        assert_eq!(http_status(1), 502);
    }
}
