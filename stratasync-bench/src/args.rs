//! Command-line options: sizes of each benchmark, where the services are.

use std::path::PathBuf;
use std::time::Duration;

/// The usage text printed by `--help`.
pub const USAGE: &str = "\
stratasync-bench: measures the stratasync server against PostgreSQL's own limits

USAGE:
    stratasync-bench [OPTIONS]

OPTIONS:
    --out <FILE>             where the report goes (default: BENCHMARKS.md)
    --postgres <URL>         admin URL of PostgreSQL (default: postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable;
                             the server and the direct-SQL baseline both connect without TLS)
    --redis <URL>            Redis for the two-node fan-out (default: redis://127.0.0.1:6379)
    --database <NAME>        the database the bench creates and drops (default: stratasync_bench)
    --server-bin <FILE>      the server binary (default: todo-example next to this binary)
    --rows <N,N,..>          bootstrap sizes (default: 100000,1000000)
    --clients <N,N,..>       mutate concurrency (default: 1,16,64)
    --batches <N,N,..>       transactions per mutate request (default: 1,100)
    --mutate-secs <S>        seconds per mutate configuration (default: 4)
    --subscribers <N,N,..>   fan-out socket counts (default: 1000,10000)
    --fanout-mutations <N>   mutations per fan-out run (default: 100)
    --fanout-rate <N,N,..>   fan-out mutations per second, one per --subscribers count in order, the
                             last for the rest (default: 20,10: 1,000 sockets at 20/s, 10,000 at 10/s)
    --actions <N>            catch-up log size (default: 100000)
    --nodes <N,N,..>         node counts of the nodes section (default: 1,2,4,8)
    --nodes-secs <S>         seconds of writes per node count (default: 4)
    --only <a,b,..>          run only these sections (bootstrap, mutate, fanout, catchup, nodes);
                             `--only nodes` replaces that section of an existing report
    --profile                repeats the largest identity bootstrap, the mutate run of 16 clients
                             × 1 tx/request and the first one-node fan-out run, sampling the server
                             with `perf`; the report shows the top symbols (skipped, with the
                             reason, where perf is missing or refused)
    --quick                  small sizes for a smoke run (10k rows, 1 s, 200 sockets, 10k actions)
    -h, --help               this text
";

/// What to run and how big.
#[derive(Debug, Clone)]
pub struct Args {
    /// The report file.
    pub out: PathBuf,
    /// Admin connection URL (any existing database of the server).
    pub postgres: String,
    /// Redis URL for the two-node fan-out.
    pub redis: String,
    /// The bench's own database.
    pub database: String,
    /// The server executable (`todo-example`).
    pub server_bin: PathBuf,
    /// Bootstrap sizes in rows.
    pub rows: Vec<u64>,
    /// Mutate concurrency levels.
    pub clients: Vec<usize>,
    /// Transactions per mutate request.
    pub batches: Vec<usize>,
    /// Duration of each mutate configuration.
    pub mutate_time: Duration,
    /// Fan-out subscriber counts.
    pub subscribers: Vec<usize>,
    /// Mutations sent per fan-out run.
    pub fanout_mutations: usize,
    /// Fan-out mutations per second, per subscriber count (the last for the rest).
    pub fanout_rates: Vec<u32>,
    /// Catch-up log size.
    pub actions: u64,
    /// Node counts of the nodes section.
    pub nodes: Vec<usize>,
    /// Writes per node count.
    pub nodes_time: Duration,
    /// Sections to run.
    pub sections: Vec<String>,
    /// Whether to profile the server with `perf` (see `profile`).
    pub profile: bool,
}

impl Args {
    /// Parses `std::env::args`; `Err` carries a message for the user.
    pub fn parse() -> Result<Args, String> {
        let mut args = Args::defaults()?;
        let mut words = std::env::args().skip(1);
        while let Some(flag) = words.next() {
            if flag == "-h" || flag == "--help" {
                print!("{USAGE}");
                std::process::exit(0);
            }
            if flag == "--profile" {
                args.profile = true;
                continue;
            }
            if flag == "--quick" {
                args.rows = vec![10_000];
                args.clients = vec![1, 16];
                args.mutate_time = Duration::from_secs(1);
                args.subscribers = vec![200];
                args.fanout_mutations = 20;
                args.actions = 10_000;
                args.nodes = vec![1, 2];
                args.nodes_time = Duration::from_secs(1);
                continue;
            }
            let value = words
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n\n{USAGE}"))?;
            match flag.as_str() {
                "--out" => args.out = value.into(),
                "--postgres" => args.postgres = value,
                "--redis" => args.redis = value,
                "--database" => args.database = value,
                "--server-bin" => args.server_bin = value.into(),
                "--rows" => args.rows = list(&flag, &value)?,
                "--clients" => args.clients = list(&flag, &value)?,
                "--batches" => args.batches = list(&flag, &value)?,
                "--mutate-secs" => {
                    args.mutate_time = Duration::from_secs_f64(number(&flag, &value)?)
                }
                "--subscribers" => args.subscribers = list(&flag, &value)?,
                "--fanout-mutations" => args.fanout_mutations = number(&flag, &value)?,
                "--fanout-rate" => args.fanout_rates = list(&flag, &value)?,
                "--actions" => args.actions = number(&flag, &value)?,
                "--nodes" => args.nodes = list(&flag, &value)?,
                "--nodes-secs" => args.nodes_time = Duration::from_secs_f64(number(&flag, &value)?),
                "--only" => args.sections = value.split(',').map(str::to_owned).collect(),
                _ => return Err(format!("unknown option {flag}\n\n{USAGE}")),
            }
        }
        Ok(args)
    }

    fn defaults() -> Result<Args, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
        let server_bin = exe.with_file_name("todo-example");
        Ok(Args {
            out: "BENCHMARKS.md".into(),
            postgres: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".to_owned(),
            redis: "redis://127.0.0.1:6379".to_owned(),
            database: "stratasync_bench".to_owned(),
            server_bin,
            rows: vec![100_000, 1_000_000],
            clients: vec![1, 16, 64],
            batches: vec![1, 100],
            mutate_time: Duration::from_secs(4),
            subscribers: vec![1_000, 10_000],
            fanout_mutations: 100,
            fanout_rates: vec![20, 10],
            actions: 100_000,
            nodes: vec![1, 2, 4, 8],
            nodes_time: Duration::from_secs(4),
            sections: ["bootstrap", "mutate", "fanout", "catchup", "nodes"]
                .map(str::to_owned)
                .to_vec(),
            profile: false,
        })
    }

    /// The fan-out rate of the `index`th subscriber count.
    pub fn fanout_rate(&self, index: usize) -> u32 {
        self.fanout_rates
            .get(index)
            .or(self.fanout_rates.last())
            .copied()
            .unwrap_or(20)
    }

    /// Whether `section` is to run.
    pub fn runs(&self, section: &str) -> bool {
        self.sections.iter().any(|s| s == section)
    }

    /// The bench database's URL: `--postgres` with its database name replaced
    /// and its parameters (`?sslmode=...`) kept.
    pub fn database_url(&self) -> String {
        let (location, query) = match self.postgres.split_once('?') {
            Some((location, query)) => (location, format!("?{query}")),
            None => (self.postgres.as_str(), String::new()),
        };
        let server = match location.rsplit_once('/') {
            Some((server, _)) if server.contains("//") => server,
            _ => location,
        };
        format!("{server}/{}{query}", self.database)
    }
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{flag}: `{value}` is not a number"))
}

fn list<T: std::str::FromStr>(flag: &str, value: &str) -> Result<Vec<T>, String> {
    value.split(',').map(|v| number(flag, v.trim())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_postgres(url: &str) -> Args {
        Args {
            postgres: url.to_owned(),
            ..Args::defaults().expect("defaults")
        }
    }

    #[test]
    fn the_bench_database_replaces_the_admin_database_and_keeps_the_parameters() {
        let args = with_postgres("postgres://u@h:5432/postgres?sslmode=disable");
        assert_eq!(
            args.database_url(),
            "postgres://u@h:5432/stratasync_bench?sslmode=disable"
        );
    }

    #[test]
    fn each_subscriber_count_has_its_rate_and_the_last_rate_repeats() {
        let args = Args {
            fanout_rates: vec![20, 10],
            ..Args::defaults().expect("defaults")
        };
        assert_eq!(
            [0, 1, 2].map(|i| args.fanout_rate(i)),
            [20, 10, 10],
            "1,000 sockets at 20/s, 10,000 at 10/s"
        );
    }

    #[test]
    fn a_url_without_a_database_gains_one() {
        assert_eq!(
            with_postgres("postgres://u@h").database_url(),
            "postgres://u@h/stratasync_bench"
        );
    }
}
