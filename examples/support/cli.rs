//! The examples' command lines, checked like any command-line tool's: an
//! unknown option, a missing or bad value, or a stray argument prints the
//! usage line and exits with status 2. Not a general parser: positional
//! arguments, then `--name VALUE` options and `--name` flags (in any order
//! after them).

// Because each example uses only part of it.
#![allow(dead_code)]

use std::error::Error;
use std::fmt;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

/// A bad command line; `finish` prints it with the usage line, status 2.
/// Empty: `--help` was asked for (the usage line, status 0).
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Usage {}

/// The parsed command line.
#[derive(Debug)]
pub struct Args {
    positional: Vec<String>,
    options: Vec<(String, String)>,
    flags: Vec<String>,
}

impl Args {
    /// Splits `args` into at most `max_positional` positional arguments
    /// and the `options` listed (each takes a value; one may be repeated).
    ///
    /// # Errors
    /// An unknown option, an option without its value, or one positional
    /// argument too many.
    pub fn parse(args: &[String], max_positional: usize, options: &[&str]) -> Result<Args, Usage> {
        Args::parse_with_flags(args, max_positional, options, &[])
    }

    /// As [`Args::parse`], and `flags` are options without a value.
    ///
    /// # Errors
    /// As [`Args::parse`].
    pub fn parse_with_flags(
        args: &[String],
        max_positional: usize,
        options: &[&str],
        flags: &[&str],
    ) -> Result<Args, Usage> {
        let mut parsed = Args {
            positional: Vec::new(),
            options: Vec::new(),
            flags: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg == "--help" || arg == "-h" {
                return Err(Usage(String::new()));
            }
            if flags.contains(&arg.as_str()) {
                parsed.flags.push(arg.clone());
            } else if arg.starts_with('-') {
                if !options.contains(&arg.as_str()) {
                    return Err(Usage(format!("unknown option {arg}")));
                }
                let Some(value) = it.next() else {
                    return Err(Usage(format!("{arg} needs a value")));
                };
                parsed.options.push((arg.clone(), value.clone()));
            } else if parsed.positional.len() < max_positional {
                parsed.positional.push(arg.clone());
            } else {
                return Err(Usage(format!("unexpected argument {arg:?}")));
            }
        }
        Ok(parsed)
    }

    /// Whether flag `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// Positional argument `i`, if given.
    pub fn positional(&self, i: usize) -> Option<&str> {
        self.positional.get(i).map(String::as_str)
    }

    /// The value of option `name` (the last one, if repeated).
    pub fn value(&self, name: &str) -> Option<&str> {
        let mut given = self.options.iter().filter(|(k, _)| k == name);
        given.next_back().map(|(_, v)| v.as_str())
    }

    /// Every value of option `name`, in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.options
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of option `name` parsed as a `T`.
    ///
    /// # Errors
    /// A value that does not parse.
    pub fn parsed<T: FromStr>(&self, name: &str) -> Result<Option<T>, Usage> {
        match self.value(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| Usage(format!("{name}: bad value {v:?}"))),
        }
    }

    /// `--seconds N`: how long to serve before stopping cleanly.
    ///
    /// # Errors
    /// N is not a whole number of seconds.
    pub fn seconds(&self) -> Result<Option<Duration>, Usage> {
        Ok(self.parsed::<u64>("--seconds")?.map(Duration::from_secs))
    }
}

/// Logs to stderr: `RUST_LOG` when set, else `info` (so wsportal's own
/// `info!` and `warn!` lines, such as a lost Redis link, are seen).
pub fn init_logs() {
    let env = env_logger::Env::default().default_filter_or("info");
    env_logger::Builder::from_env(env).init();
}

/// The command line, without the program name.
pub fn args() -> Vec<String> {
    std::env::args().skip(1).collect()
}

/// `main`'s end: status 0 (the usage line for `--help`); 2 with the usage
/// line for a bad command line; 1 with the error's text for anything else.
pub fn finish(usage: &str, result: Result<(), Box<dyn Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<Usage>().is_some_and(|u| u.0.is_empty()) => {
            println!("usage: {usage}");
            ExitCode::SUCCESS
        }
        Err(e) if e.is::<Usage>() => {
            eprintln!("error: {e}\nusage: {usage}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
