//! Refusals as gRPC statuses.
//!
//! A Spark Connect client only understands gRPC, so everything the gateway
//! refuses is answered the gRPC way: HTTP 200 with `grpc-status` and
//! `grpc-message` in a trailers-only response, which every gRPC client turns
//! into an error carrying the message. Never a reset or an HTTP error page,
//! which a client would report as a broken connection.

use axum::http::{HeaderValue, Response, header};

/// The gRPC status codes the gateway answers with (from `grpc/status.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    InvalidArgument = 3,
    NotFound = 5,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl Code {
    pub fn name(self) -> &'static str {
        match self {
            Self::InvalidArgument => "INVALID_ARGUMENT",
            Self::NotFound => "NOT_FOUND",
            Self::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Self::FailedPrecondition => "FAILED_PRECONDITION",
            Self::Unimplemented => "UNIMPLEMENTED",
            Self::Internal => "INTERNAL",
            Self::Unavailable => "UNAVAILABLE",
            Self::Unauthenticated => "UNAUTHENTICATED",
        }
    }
}

/// A trailers-only gRPC response with `code` and `message`.
pub fn response<B: Default>(code: Code, message: &str) -> Response<B> {
    let mut response = Response::new(B::default());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", HeaderValue::from(code as u16));
    if let Ok(value) = HeaderValue::from_str(&percent_encode(message)) {
        headers.insert("grpc-message", value);
    }
    response
}

/// gRPC's encoding of `grpc-message`: printable ASCII except `%` as is,
/// every other byte of the UTF-8 text as `%XX`.
fn percent_encode(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for byte in message.bytes() {
        if (0x20..=0x7e).contains(&byte) && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_trailers_only_grpc_responses() {
        let r: Response<()> = response(Code::NotFound, "no engine 50% — sorry\n");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/grpc");
        assert_eq!(r.headers()["grpc-status"], "5");
        assert_eq!(
            r.headers()["grpc-message"],
            "no engine 50%25 %E2%80%94 sorry%0A"
        );
    }
}
