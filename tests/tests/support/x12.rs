//! Validation of rendered X12 837P interchanges with pyx12's `x12valid`, an
//! implementation of the 005010X222A1 guide independent of caregate's.
//!
//! The validator is `X12VALID` when set, else `<workspace>/target/pyx12/bin/x12valid`,
//! else `x12valid` on the PATH. Without one the check fails: it is never
//! skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL: &str = "python3 -m venv target/pyx12 && target/pyx12/bin/pip install pyx12==4.0.0 \
                       (from the workspace root), or set X12VALID to an x12valid executable";

fn validator() -> PathBuf {
    if let Ok(path) = std::env::var("X12VALID") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "X12VALID is set to {}, which is not a file",
            path.display()
        );
        return path;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let venv = workspace.join("target/pyx12/bin/x12valid");
    if venv.is_file() {
        return venv;
    }
    if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("x12valid"))
            .find(|candidate| candidate.is_file())
    }) {
        return found;
    }
    install(&venv)
}

/// Installs pyx12 into `target/pyx12` (once per test run) when no validator
/// is found, so `cargo test` works on a machine with Python 3 and the
/// package index; fails with the instructions otherwise.
fn install(venv: &Path) -> PathBuf {
    static INSTALLED: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let result = INSTALLED.get_or_init(|| {
        let root = venv
            .parent()
            .and_then(Path::parent)
            .ok_or("no target directory")?;
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        eprintln!("installing pyx12 into {}", root.display());
        run(Command::new("python3").args(["-m", "venv"]).arg(root))?;
        run(Command::new(root.join("bin/pip")).args(["install", "-q", "pyx12==4.0.0"]))?;
        if venv.is_file() {
            Ok(venv.to_path_buf())
        } else {
            Err(format!("{} was not installed", venv.display()))
        }
    });
    match result {
        Ok(path) => path.clone(),
        Err(why) => panic!(
            "pyx12's x12valid was not found and could not be installed ({why}); install it with: {INSTALL}"
        ),
    }
}

/// Asserts that `text` is a valid 837P interchange by pyx12: the file is
/// reported OK, no error or warning is logged, and the 997 acknowledgement
/// pyx12 writes accepts the functional group (`AK9*A`).
pub fn assert_valid_837(text: &str) {
    let x12valid = validator();
    let dir = std::env::temp_dir().join(format!(
        "caregate-837-{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    ));
    std::fs::create_dir_all(&dir).expect("a directory for the interchange");
    let file = dir.join("claim.x12");
    std::fs::write(&file, text).expect("writing the interchange");
    let out = Command::new(&x12valid)
        .arg(&file)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e} (install: {INSTALL})", x12valid.display()));
    // x12valid exits 1 even when the file is valid: its log is the verdict.
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let ack_path = PathBuf::from(format!("{}.997", file.display()));
    let ack = std::fs::read_to_string(&ack_path).unwrap_or_default();
    let verdict =
        format!("pyx12 on the interchange:\n{text}\n--- log ---\n{log}\n--- 997 ---\n{ack}");
    assert!(
        log.contains(&format!("{}: OK", file.display())),
        "not reported OK. {verdict}"
    );
    let complaints: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARNING"))
        .collect();
    assert!(complaints.is_empty(), "{complaints:#?}\n{verdict}");
    assert!(
        ack.contains("AK9*A*"),
        "the 997 does not accept it. {verdict}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broken_interchange_is_refused() {
    let result = std::panic::catch_unwind(|| {
        assert_valid_837("ISA*00*          *00*          *ZZ*X*ZZ*Y*~");
    });
    assert!(result.is_err(), "garbage passed as a valid 837P");
}
