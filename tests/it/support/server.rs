//! The server running in this process, writing its event lines to a buffer.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::Duration;

use sipgateio_callevents::app::App;
use sipgateio_callevents::config::Config;
use sipgateio_callevents::exchange::{Incoming, Reply};
use sipgateio_callevents::metrics::Metrics;
use sipgateio_callevents::output::EventSink;
use sipgateio_callevents::server::{Server, ServerOptions, Stopper};

use super::{Answer, get, post};

/// The server's log, shown for failing tests only.
fn init_log() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = env_logger::builder().is_test(true).try_init();
    });
}

/// A buffer the in-process server writes its event lines to.
#[derive(Clone, Default)]
pub struct Lines {
    buffer: Arc<Mutex<Vec<u8>>>,
    /// The sink writing here, to wait for its queue.
    sink: Arc<OnceLock<EventSink>>,
}

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    /// Every line written so far, once the sink's queue is written out.
    pub fn all(&self) -> Vec<String> {
        if let Some(sink) = self.sink.get() {
            assert!(
                sink.wait_written(Duration::from_secs(5)),
                "event lines stuck in the queue"
            );
        }
        String::from_utf8(self.buffer.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// A server running in this process on 127.0.0.1:0, stopped on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub lines: Lines,
    stopper: Stopper,
    /// Held for the test's life, as `main` holds it: it owns the channel the server's
    /// watchers report failures on.
    _server: Server,
}

impl TestServer {
    /// The server as the binary runs it with `vars` for its environment: the app from
    /// [`App::from_config`] (verification on unless `SKIP_SIGNATURE_VERIFICATION` says
    /// otherwise; rules, key file and metrics as set).
    pub fn start(vars: &[(&str, &str)]) -> TestServer {
        TestServer::start_with(vars, |app, request| app.route(request))
    }

    /// [`TestServer::start`], with every request handed to the app through `route`: to
    /// change what the app sees, such as the time a request came.
    pub fn start_with(
        vars: &[(&str, &str)],
        route: impl Fn(&App, &Incoming<'_>) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        let config = config(vars);
        let app = App::from_config(&config).unwrap_or_else(|error| panic!("{error}"));
        let metrics = app.metrics();
        TestServer::serve(
            &config,
            metrics,
            Arc::new(move |request: &Incoming<'_>| route(&app, request)),
        )
    }

    /// Verification off: most tests send unsigned fixtures.
    pub fn unsigned() -> TestServer {
        TestServer::start(&[("SKIP_SIGNATURE_VERIFICATION", "true")])
    }

    /// A server that answers every request with `handler` instead of an app.
    pub fn with_handler(
        config: &Config,
        handler: Arc<dyn Fn(&Incoming<'_>) -> Reply + Send + Sync>,
    ) -> TestServer {
        TestServer::serve(config, None, handler)
    }

    fn serve(
        config: &Config,
        metrics: Option<Arc<Metrics>>,
        handler: Arc<dyn Fn(&Incoming<'_>) -> Reply + Send + Sync>,
    ) -> TestServer {
        init_log();
        let lines = Lines::default();
        let options = ServerOptions {
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            metrics,
            ..ServerOptions::new(config)
        };
        let sink = EventSink::new(lines.clone(), config.event_format);
        lines.sink.set(sink.clone()).ok().expect("a fresh buffer");
        let server = Server::start(&options, handler, sink).unwrap();
        TestServer {
            addr: server.local_addr(),
            lines,
            stopper: server.stopper(),
            _server: server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// [`post`] to `path` on this server.
    pub fn post(&self, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Answer {
        post(&self.url(path), body, headers)
    }

    /// POSTs a form body without a signature.
    pub fn post_form(&self, path: &str, body: &[u8]) -> Answer {
        self.post(path, body, &[])
    }

    pub fn get(&self, path: &str) -> Answer {
        get(&self.url(path))
    }

    /// Stops the server as a stop signal would.
    pub fn stop(&self) {
        self.stopper.stop();
    }
}

impl Drop for TestServer {
    /// Stops without waiting: the workers end on their own a moment later.
    fn drop(&mut self) {
        self.stopper.stop();
    }
}

pub fn config(vars: &[(&str, &str)]) -> Config {
    Config::from_lookup(|name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| (*value).to_owned())
    })
    .unwrap()
}
