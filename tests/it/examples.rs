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
