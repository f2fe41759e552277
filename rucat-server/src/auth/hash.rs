//! `rucat-server hash-password` and `rucat-server hash-token`: what goes
//! into a static user's `password_hash` and `token_sha256`.
//!
//! The password is read from standard input, never from the command line,
//! where other users of the machine can read it (`ps`) and the shell keeps
//! it in its history.

use std::io::{BufRead, Write};

use argon2::password_hash::{PasswordHasher, SaltString};
use sha2::{Digest, Sha256};

/// What `rucat-server <command>` does instead of serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Read a password from standard input (one line) and print its argon2id
    /// hash, for a static user's `password_hash`. Never give the password as
    /// an argument: other users see arguments, and shells keep them.
    HashPassword,
    /// Print a fresh random token (256 bits) and its SHA-256, for a static
    /// user's `token_sha256`.
    HashToken {
        /// Hash the token read from standard input (one line, at least 32
        /// characters) instead, printing only its SHA-256.
        #[arg(long)]
        stdin: bool,
    },
}

/// Runs `command` on standard input and output.
pub fn run(command: Command) -> Result<(), HashError> {
    let (mut input, mut output) = (std::io::stdin().lock(), std::io::stdout().lock());
    match command {
        Command::HashPassword => run_hash_password(&mut input, &mut output),
        Command::HashToken { stdin } => run_hash_token(stdin, &mut input, &mut output),
    }
}

/// The shortest token `hash-token --stdin` hashes: a fast hash is only safe
/// for tokens nobody can guess (see [`super::TokenDigest`]).
pub const MIN_TOKEN_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot read standard input: {0}")]
    Read(#[from] std::io::Error),
    #[error("no password on standard input")]
    Empty,
    #[error(
        "a token to hash must have at least {MIN_TOKEN_LEN} characters; `rucat-server hash-token` without --stdin makes one"
    )]
    ShortToken,
    #[error("no randomness available: {0}")]
    Random(getrandom::Error),
    #[error("cannot hash: {0}")]
    Hash(String),
}

/// The argon2id PHC string of `password`, with argon2's recommended
/// parameters (19 MiB, two passes, one lane: OWASP's first choice) and a
/// random salt.
pub fn hash_password(password: &[u8]) -> Result<String, HashError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(HashError::Random)?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| HashError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password, &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

/// A fresh token: 256 random bits, as 64 hex digits.
pub fn new_token() -> Result<String, HashError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(HashError::Random)?;
    Ok(hex(&bytes))
}

/// What goes into `token_sha256` for `token`.
pub fn token_digest_hex(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first line of `input`, without its line ending.
fn read_line(input: &mut impl BufRead) -> Result<String, HashError> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(line.to_owned())
}

/// `hash-password`: reads one line (the password) from `input`, writes its
/// argon2id PHC string to `output`.
pub fn run_hash_password(
    input: &mut impl BufRead,
    output: &mut impl Write,
) -> Result<(), HashError> {
    let password = read_line(input)?;
    if password.is_empty() {
        return Err(HashError::Empty);
    }
    writeln!(output, "{}", hash_password(password.as_bytes())?)?;
    Ok(())
}

/// `hash-token`: with `from_stdin`, reads a token from `input` and writes
/// its SHA-256; else makes a fresh token and writes it and its SHA-256, as
/// `token: …` and `token_sha256: …` lines.
pub fn run_hash_token(
    from_stdin: bool,
    input: &mut impl BufRead,
    output: &mut impl Write,
) -> Result<(), HashError> {
    if from_stdin {
        let token = read_line(input)?;
        if token.chars().count() < MIN_TOKEN_LEN {
            return Err(HashError::ShortToken);
        }
        writeln!(output, "{}", token_digest_hex(&token))?;
    } else {
        let token = new_token()?;
        writeln!(output, "token: {token}")?;
        writeln!(output, "token_sha256: {}", token_digest_hex(&token))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::config::{PasswordHash, TokenDigest};

    #[test]
    fn a_hashed_password_parses_and_verifies() {
        let mut out = Vec::new();
        run_hash_password(&mut &b"s3cret pass\r\nignored\n"[..], &mut out).unwrap();
        let phc = String::from_utf8(out).unwrap();
        let phc = phc.trim_end();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(matches!(phc.parse(), Ok(PasswordHash::Argon2(_))));
        let parsed = argon2::password_hash::PasswordHash::new(phc).unwrap();
        use argon2::password_hash::PasswordVerifier;
        let argon = argon2::Argon2::default();
        assert!(argon.verify_password(b"s3cret pass", &parsed).is_ok());
        assert!(argon.verify_password(b"s3cret pass\r", &parsed).is_err());
        assert!(matches!(
            run_hash_password(&mut &b"\n"[..], &mut Vec::new()),
            Err(HashError::Empty)
        ));
    }

    #[test]
    fn tokens_and_their_digests() {
        let mut out = Vec::new();
        run_hash_token(false, &mut &b""[..], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let token = lines[0].strip_prefix("token: ").unwrap();
        let digest = lines[1].strip_prefix("token_sha256: ").unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(digest, token_digest_hex(token));
        assert!(digest.parse::<TokenDigest>().is_ok());
        assert_ne!(new_token().unwrap(), token, "fresh each time");
        let mut out = Vec::new();
        run_hash_token(true, &mut format!("{token}\n").as_bytes(), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().trim(), digest);
        assert!(matches!(
            run_hash_token(true, &mut &b"short\n"[..], &mut Vec::new()),
            Err(HashError::ShortToken)
        ));
        // The digest of "abc", from FIPS 180-2.
        assert_eq!(
            token_digest_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
