//! A private PostgreSQL server for one test (or benchmark): `initdb` into a temporary
//! folder, `pg_ctl start` on a free local port with trust authentication, stopped when
//! dropped. The server binaries come from the Debian/Ubuntu packages
//! (`/usr/lib/postgresql/<version>/bin`, installed by `just setup`) or `pg_config --bindir`;
//! without them the test fails and says how to install them.
//!
//! PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user
//! (which the package creates), in a folder handed over to it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// A running server, its data folder and port.
pub struct PgCluster {
    dir: TempDir,
    bin: PathBuf,
    pub port: u16,
    /// The user the server runs as when the test runs as root.
    run_as: Option<&'static str>,
}

/// The folder of `initdb`, `pg_ctl` and `psql`, newest version first.
fn server_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return bin;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if bin.join("initdb").is_file() && bin.join("pg_ctl").is_file() {
            return bin;
        }
    }
    panic!(
        "the PostgreSQL server binaries (initdb, pg_ctl) are not installed: looked in /usr/lib/postgresql/*/bin \
         and `pg_config --bindir`. Run `just setup` (or `apt-get install postgresql`) before these tests"
    );
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free local port").local_addr().expect("an address").port()
}

fn check(what: &str, out: std::io::Result<Output>) -> String {
    let out = out.unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{what} failed ({})\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
}

impl PgCluster {
    /// A new server (a few hundred ms: `initdb --no-sync`, then start). `settings` are
    /// extra `-c name=value` server settings.
    pub fn start(settings: &[&str]) -> Self {
        let bin = server_bin();
        let dir = tempfile::Builder::new().prefix("weir-pg-").tempdir().expect("a temporary folder");
        let run_as = is_root().then_some("postgres");
        if let Some(user) = run_as {
            check("chown", Command::new("chown").arg(format!("{user}:")).arg(dir.path()).output());
        }
        let cluster = PgCluster { dir, bin, port: free_port(), run_as };
        let data = cluster.data();
        check(
            "initdb",
            cluster
                .as_server_user(&cluster.bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--no-instructions", "-D"])
                .arg(&data)
                .output(),
        );
        let mut conf = String::from("listen_addresses = '127.0.0.1'\nmax_connections = 50\n");
        for setting in settings {
            conf.push_str(setting);
            conf.push('\n');
        }
        let auto = data.join("postgresql.auto.conf");
        let old = std::fs::read_to_string(&auto).unwrap_or_default();
        std::fs::write(&auto, old + &conf).expect("the server's settings are written");
        cluster.start_again();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_server_user(&self, program: &Path) -> Command {
        match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = self.as_server_user(&self.bin.join("pg_ctl"));
        cmd.arg("-D").arg(self.data());
        cmd
    }

    /// Start the (stopped) server again on the same port.
    pub fn start_again(&self) {
        let log = self.dir.path().join("server.log");
        let options = format!("-p {} -k {}", self.port, self.dir.path().display());
        let out = self.pg_ctl().arg("-l").arg(&log).args(["-w", "-t", "30", "-o", &options, "start"]).output();
        let ok = out.as_ref().is_ok_and(|o| o.status.success());
        if !ok {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("pg_ctl start failed: {out:?}\n--- server.log\n{log}");
        }
    }

    /// Stop the server at once (`-m immediate`: like a crash, the clients' connections drop).
    pub fn stop(&self) {
        check("pg_ctl stop", self.pg_ctl().args(["-m", "immediate", "-w", "stop"]).output());
    }

    /// A url for the sink's `url`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Run SQL with psql; its output unaligned, tuples only (`a|b` per row).
    pub fn psql(&self, sql: &str) -> String {
        check(
            &format!("psql -c {sql:?}"),
            Command::new(self.bin.join("psql"))
                .args([
                    "-X",
                    "-q",
                    "-At",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                ])
                .arg("-p")
                .arg(self.port.to_string())
                .arg("-c")
                .arg(sql)
                .output(),
        )
    }

    /// The rows of a query, each as its `|`-separated columns.
    pub fn rows(&self, sql: &str) -> Vec<String> {
        self.psql(sql).lines().map(str::to_string).collect()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Already stopped is fine.
        let _ = self.pg_ctl().args(["-m", "immediate", "-w", "stop"]).output();
    }
}
