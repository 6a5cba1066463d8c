//! A tiny shell that exec and attach sessions run: `echo`, `cat`, `hostname`, `pwd`, `env`, `ls`,
//! `whoami`, `sleep`, `true`, `false`, `exit N`, and `sh`/`bash` (`-c SCRIPT` or interactive, reading
//! lines from stdin). Commands are separated by `;`, `&&` and `||`; quotes group words.

use std::time::Duration;

use tokio::sync::mpsc;

pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;

/// The process side of a session: stdin chunks in (the channel closes at end of input) and output
/// frames out, tagged with their stream.
pub struct ShellIo {
    pub stdin: mpsc::Receiver<Vec<u8>>,
    pub output: mpsc::Sender<(u8, Vec<u8>)>,
    pub hostname: String,
    pub tty: bool,
    pending: Vec<u8>,
    stdin_closed: bool,
}

enum Flow {
    Continue(i32),
    Exit(i32),
}

impl ShellIo {
    pub fn new(
        stdin: mpsc::Receiver<Vec<u8>>,
        output: mpsc::Sender<(u8, Vec<u8>)>,
        hostname: String,
        tty: bool,
    ) -> ShellIo {
        ShellIo {
            stdin,
            output,
            hostname,
            tty,
            pending: Vec::new(),
            stdin_closed: false,
        }
    }

    async fn write(&self, stream: u8, text: &str) {
        // A terminal merges stderr into stdout and turns newlines into CR LF.
        let (stream, bytes) = if self.tty {
            (STDOUT, text.replace('\n', "\r\n").into_bytes())
        } else {
            (stream, text.as_bytes().to_vec())
        };
        // A closed output means the client left; the session ends on its own then.
        let _ = self.output.send((stream, bytes)).await;
    }

    async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if self.stdin_closed {
            return None;
        }
        let chunk = self.stdin.recv().await;
        if chunk.is_none() {
            self.stdin_closed = true;
        }
        chunk
    }

    /// One line of input, echoed when on a terminal; `None` at end of input.
    async fn read_line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n' || *b == b'\r') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                if self.tty {
                    self.write(STDOUT, "\n").await;
                }
                return Some(String::from_utf8_lossy(&line[..line.len() - 1]).to_string());
            }
            let chunk = match self.next_chunk().await {
                Some(chunk) => chunk,
                None if self.pending.is_empty() => return None,
                None => return Some(String::from_utf8_lossy(&std::mem::take(&mut self.pending)).to_string()),
            };
            for byte in chunk {
                match byte {
                    0x04 if self.tty && self.pending.is_empty() => return None,
                    0x03 if self.tty => {
                        self.pending.clear();
                        self.write(STDOUT, "^C\n").await;
                        return Some(String::new());
                    }
                    0x7f | 0x08 if self.tty => {
                        if self.pending.pop().is_some() {
                            self.write(STDOUT, "\u{8} \u{8}").await;
                        }
                    }
                    _ => {
                        if self.tty && byte != b'\r' && byte != b'\n' {
                            let _ = self.output.send((STDOUT, vec![byte])).await;
                        }
                        self.pending.push(byte);
                    }
                }
            }
        }
    }
}

/// Splits a command line into words, honouring single and double quotes and backslash escapes.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut characters = line.chars();
    while let Some(c) = characters.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(next) = characters.next() {
                    current.push(next);
                    in_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Splits a script into commands and the operator before each (`;`, `&&`, `||`), outside quotes.
fn commands(script: &str) -> Vec<(&'static str, String)> {
    let mut result = Vec::new();
    let mut current = String::new();
    let mut operator = ";";
    let mut quote: Option<char> = None;
    let characters: Vec<char> = script.chars().collect();
    let mut index = 0;
    while index < characters.len() {
        let c = characters[index];
        let next = characters.get(index + 1).copied();
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                current.push(c);
            }
            (Some(_), c) => current.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                current.push(c);
            }
            (None, ';' | '\n') => {
                result.push((operator, std::mem::take(&mut current)));
                operator = ";";
            }
            (None, '&') if next == Some('&') => {
                result.push((operator, std::mem::take(&mut current)));
                operator = "&&";
                index += 1;
            }
            (None, '|') if next == Some('|') => {
                result.push((operator, std::mem::take(&mut current)));
                operator = "||";
                index += 1;
            }
            (None, c) => current.push(c),
        }
        index += 1;
    }
    result.push((operator, current));
    result
        .into_iter()
        .filter(|(_, command)| !command.trim().is_empty())
        .collect()
}

/// Runs `argv` (the exec command) and returns its exit code.
pub async fn run(argv: &[String], io: &mut ShellIo) -> i32 {
    match run_words(argv, io).await {
        Flow::Continue(code) | Flow::Exit(code) => code,
    }
}

async fn run_script(script: &str, io: &mut ShellIo) -> Flow {
    let mut status = 0;
    for (operator, command) in commands(script) {
        let skip = (operator == "&&" && status != 0) || (operator == "||" && status == 0);
        if skip {
            continue;
        }
        let argv = words(&command);
        match Box::pin(run_words(&argv, io)).await {
            Flow::Continue(code) => status = code,
            Flow::Exit(code) => return Flow::Exit(code),
        }
    }
    Flow::Continue(status)
}

async fn interactive(io: &mut ShellIo) -> i32 {
    let mut status = 0;
    // Bounded: a session reads at most this many lines.
    for _ in 0..10_000 {
        if io.tty {
            io.write(STDOUT, "# ").await;
        }
        let Some(line) = io.read_line().await else {
            return status;
        };
        match run_script(&line, io).await {
            Flow::Continue(code) => status = code,
            Flow::Exit(code) => return code,
        }
    }
    status
}

async fn run_words(argv: &[String], io: &mut ShellIo) -> Flow {
    let Some(program) = argv.first() else {
        return Flow::Continue(0);
    };
    let args = &argv[1..];
    let name = program.rsplit('/').next().unwrap_or(program);
    match name {
        "sh" | "bash" | "ash" => {
            if args.first().map(String::as_str) == Some("-c") {
                let script = args.get(1).cloned().unwrap_or_default();
                let code = match run_script(&script, io).await {
                    Flow::Continue(code) | Flow::Exit(code) => code,
                };
                Flow::Continue(code)
            } else {
                Flow::Continue(Box::pin(interactive(io)).await)
            }
        }
        "echo" => {
            let (newline, args) = match args.first().map(String::as_str) {
                Some("-n") => (false, &args[1..]),
                _ => (true, args),
            };
            let mut text = args.join(" ");
            if newline {
                text.push('\n');
            }
            io.write(STDOUT, &text).await;
            Flow::Continue(0)
        }
        "cat" => {
            if args.is_empty() {
                let mut copied = 0usize;
                // Bounded: cat copies at most 64 MiB of stdin.
                while copied < 64 << 20 {
                    let Some(chunk) = io.next_chunk().await else { break };
                    copied += chunk.len();
                    io.write(STDOUT, &String::from_utf8_lossy(&chunk)).await;
                }
                return Flow::Continue(0);
            }
            let mut status = 0;
            for file in args {
                if file == "/etc/hostname" {
                    let text = format!("{}\n", io.hostname);
                    io.write(STDOUT, &text).await;
                } else {
                    io.write(STDERR, &format!("cat: {file}: No such file or directory\n"))
                        .await;
                    status = 1;
                }
            }
            Flow::Continue(status)
        }
        "hostname" => {
            let text = format!("{}\n", io.hostname);
            io.write(STDOUT, &text).await;
            Flow::Continue(0)
        }
        "pwd" => {
            io.write(STDOUT, "/\n").await;
            Flow::Continue(0)
        }
        "whoami" => {
            io.write(STDOUT, "root\n").await;
            Flow::Continue(0)
        }
        "ls" => {
            io.write(STDOUT, "bin\ndev\netc\nhome\nproc\nroot\nsys\ntmp\nusr\nvar\n")
                .await;
            Flow::Continue(0)
        }
        "env" => {
            let text = format!(
                "PATH=/usr/local/bin:/usr/bin:/bin\nHOSTNAME={}\nHOME=/root\n",
                io.hostname
            );
            io.write(STDOUT, &text).await;
            Flow::Continue(0)
        }
        "sleep" => {
            let seconds = args
                .first()
                .and_then(|s| s.parse::<f64>().ok())
                .unwrap_or(0.0)
                .clamp(0.0, 30.0);
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            Flow::Continue(0)
        }
        "true" => Flow::Continue(0),
        "false" => Flow::Continue(1),
        "exit" => Flow::Exit(args.first().and_then(|s| s.parse().ok()).unwrap_or(0)),
        _ => {
            io.write(STDERR, &format!("sh: {program}: not found\n")).await;
            Flow::Continue(127)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn check(argv: &[&str], stdin: &str, expected_stdout: &str, expected_code: i32) {
        let (stdin_sender, stdin_receiver) = mpsc::channel(4);
        let (output_sender, mut output_receiver) = mpsc::channel(1024);
        if !stdin.is_empty() {
            stdin_sender
                .send(stdin.as_bytes().to_vec())
                .await
                .expect("the shell holds stdin");
        }
        drop(stdin_sender);
        let mut io = ShellIo::new(stdin_receiver, output_sender, "pod-a".into(), false);
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let code = run(&argv, &mut io).await;
        drop(io);
        let mut stdout = String::new();
        while let Some((stream, bytes)) = output_receiver.recv().await {
            if stream == STDOUT {
                stdout.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        assert_eq!((stdout.as_str(), code), (expected_stdout, expected_code), "{argv:?}");
    }

    #[tokio::test]
    async fn commands_behave_like_a_small_shell() {
        check(&["echo", "hi", "there"], "", "hi there\n", 0).await;
        check(
            &["sh", "-c", "echo 'a;b'; false && echo no || echo yes; exit 3"],
            "",
            "a;b\nyes\n",
            3,
        )
        .await;
        check(&["cat"], "piped\n", "piped\n", 0).await;
        check(
            &["sh"],
            "hostname\necho \"x  y\"\nexit 4\necho never\n",
            "pod-a\nx  y\n",
            4,
        )
        .await;
        check(&["nosuch"], "", "", 127).await;
    }
}
