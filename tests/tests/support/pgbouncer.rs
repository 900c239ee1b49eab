//! A PgBouncer in transaction mode in front of the test server, as large
//! deployments run PostgreSQL: started once per test process, with fewer
//! server connections than the servers under test hold client connections,
//! so consecutive transactions of one client land on different server
//! connections.
//!
//! It needs the `pgbouncer` binary (Debian's package: `apt-get install
//! pgbouncer`; or `PGBOUNCER=/path/to/pgbouncer`).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::sync::OnceCell;

/// Server connections PgBouncer keeps per database and role.
pub const SERVER_CONNECTIONS: u32 = 3;

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("PGBOUNCER") {
        return PathBuf::from(path);
    }
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin"])
    {
        let candidate = PathBuf::from(dir).join("pgbouncer");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "these tests run caregate behind PgBouncer and need its binary: \
         `apt-get install pgbouncer`, or set PGBOUNCER to its path"
    );
}

/// `host:port` of the PgBouncer in front of the test server.
pub async fn address() -> &'static str {
    static ADDRESS: OnceCell<String> = OnceCell::const_new();
    ADDRESS.get_or_init(|| launch("")).await
}

/// `host:port` of a PgBouncer that silently drops the startup options
/// clients send (`ignore_startup_parameters`), as many are configured.
pub async fn address_ignoring_startup_options() -> &'static str {
    static ADDRESS: OnceCell<String> = OnceCell::const_new();
    ADDRESS
        .get_or_init(|| launch("ignore_startup_parameters = extra_float_digits, options\n"))
        .await
}

async fn launch(extra: &'static str) -> String {
    let upstream = url::Url::parse(super::db::admin_url().await).expect("a valid URL");
    let host = upstream.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = upstream.port().unwrap_or(5432);
    tokio::task::spawn_blocking(move || start(&host, port, extra))
        .await
        .expect("starting PgBouncer")
}

fn start(host: &str, port: u16, extra: &str) -> String {
    let listen_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = std::env::temp_dir().join(format!(
        "caregate-pgbouncer-{}-{listen_port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("PgBouncer's directory");
    // PgBouncer refuses to run as root; it then runs as `postgres`, which
    // must be able to write its log here.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let users = dir.join("users.txt");
    std::fs::write(
        &users,
        format!("\"{}\" \"\"\n\"postgres\" \"\"\n", migration::RUNTIME_ROLE),
    )
    .expect("PgBouncer's users");
    let ini = dir.join("pgbouncer.ini");
    let config = format!(
        "[databases]\n\
         * = host={host} port={port}\n\
         [pgbouncer]\n\
         listen_addr = 127.0.0.1\n\
         listen_port = {listen_port}\n\
         unix_socket_dir =\n\
         auth_type = trust\n\
         auth_file = {users}\n\
         pool_mode = transaction\n\
         default_pool_size = {SERVER_CONNECTIONS}\n\
         max_client_conn = 1000\n\
         logfile = {log}\n\
         {extra}",
        users = users.display(),
        log = dir.join("pgbouncer.log").display(),
    );
    std::fs::write(&ini, config).expect("PgBouncer's configuration");
    for file in [&users, &ini] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let as_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let user = if as_root { "-u postgres " } else { "" };
    // The shell ends PgBouncer when this process's end closes its stdin,
    // however this process ends.
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' {user}'{}' & child=$!; read _ignored; kill $child",
            binary().display(),
            ini.display()
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starting PgBouncer");
    let stdin = watchdog.stdin.take().expect("the watchdog's stdin");
    // Held open for the life of the process.
    std::mem::forget(stdin);
    std::mem::forget(watchdog);
    let address = format!("127.0.0.1:{listen_port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(&address).is_ok() {
            return address;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(dir.join("pgbouncer.log")).unwrap_or_default();
    let _ = std::io::stderr().write_all(log.as_bytes());
    panic!("PgBouncer did not start on {address}");
}
