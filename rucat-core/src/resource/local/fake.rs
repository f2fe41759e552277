//! A stand-in Spark home whose `spark-submit` is a shell script, so that the
//! local resource manager's bookkeeping (processes, ports, exits, adoption)
//! can be tested without a JVM.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A script that behaves like a Spark Connect server as far as rucat can
/// tell: it listens on the port rucat gave it and accepts connections until
/// it is killed.
pub const SERVER: &str = r#"exec python3 -c 'import re, socket, sys
port = int(re.search(r"binding.port=(\d+)", " ".join(sys.argv)).group(1))
s = socket.socket(); s.bind(("127.0.0.1", port)); s.listen()
while True: s.accept()[0].close()' "$@""#;

/// Creates `<root>/spark`, a Spark 4.3.0 home whose `spark-submit` runs
/// `script` (with rucat's arguments in `$@`), and returns its path.
pub fn spark_home(root: &Path, script: &str) -> std::io::Result<PathBuf> {
    let home = root.join("spark");
    std::fs::create_dir_all(home.join("bin"))?;
    std::fs::create_dir_all(home.join("jars"))?;
    std::fs::write(home.join("jars/spark-core_2.13-4.3.0.jar"), "")?;
    let submit = home.join("bin/spark-submit");
    std::fs::write(&submit, format!("#!/bin/sh\n{script}\n"))?;
    std::fs::set_permissions(&submit, std::fs::Permissions::from_mode(0o755))?;
    Ok(home)
}
