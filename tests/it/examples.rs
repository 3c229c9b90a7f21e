//! Every server example stops cleanly: run as it is (its source is a child
//! of this module) with `--seconds 0`, it starts, closes, joins its own
//! threads and returns `Ok`. (`logtail` has a fuller test of its own.)

// Because the examples' `main`s are not called here:
#[allow(dead_code)]
#[path = "../../examples/chat.rs"]
mod chat;
#[allow(dead_code)]
#[path = "../../examples/demo.rs"]
mod demo;
#[allow(dead_code)]
#[path = "../../examples/echo.rs"]
mod echo;
#[allow(dead_code)]
#[path = "../../examples/hooks.rs"]
mod hooks;
#[allow(dead_code)]
#[path = "../../examples/push.rs"]
mod push;
#[allow(dead_code)]
#[path = "../../examples/soak.rs"]
mod soak;

#[test]
fn every_server_example_stops_cleanly_after_its_seconds() {
    let args: Vec<String> = ["127.0.0.1:0", "--seconds", "0"].map(String::from).into();
    chat::run(&args).unwrap();
    demo::run(&args).unwrap();
    echo::run(&args).unwrap();
    hooks::run(&args).unwrap();
    push::run(&args).unwrap();
    soak::run(&args).unwrap();
}

/// Without the `redis` feature, `--redis` is refused with a message that
/// names the feature (rather than ignored).
#[cfg(not(feature = "redis"))]
#[test]
fn redis_flag_without_the_feature_says_so() {
    let args: Vec<String> = [
        "127.0.0.1:0",
        "--redis",
        "redis://127.0.0.1:1/",
        "--seconds",
        "0",
    ]
    .map(String::from)
    .into();
    for e in [demo::run(&args).unwrap_err(), chat::run(&args).unwrap_err()] {
        assert!(e.to_string().contains("redis"), "{e}");
        assert!(e.to_string().contains("feature"), "{e}");
    }
}
