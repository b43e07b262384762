//! Process life: SIGTERM stops an idle daemon promptly and cleanly, and drains a request
//! that is in flight (the upload completes and survives) before exiting.

use crate::common::checks::id_of;
use crate::common::raw::request;
use crate::common::util::{random_bytes, sha256_hex};
use crate::common::{Client, Daemon, RawConn};
use std::time::{Duration, Instant};

#[test]
fn sigterm_exits_promptly_when_idle() {
    let mut d = Daemon::start(&[]);
    Client::new(&d).upload("x", None, None, b"x");
    let t0 = Instant::now();
    let st = d.stop();
    assert!(st.success(), "exit status {st} after SIGTERM");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "idle daemon took {:?} to exit",
        t0.elapsed()
    );
}

#[test]
fn sigterm_drains_an_in_flight_upload() {
    let mut d = Daemon::start(&["--grace-period", "5s"]);
    let data = random_bytes(51, 200_000);
    let mut conn = RawConn::connect(d.addr());
    conn.send(&request(
        "POST",
        "/v1/objects?name=drain.bin",
        &[
            ("Authorization", &format!("Bearer {}", d.token())),
            ("Content-Length", &data.len().to_string()),
        ],
        b"",
    ));
    conn.send(&data[..100_000]);
    // Wait until the daemon is writing the body (a file in tmp/), so the request is
    // truly in flight when the signal arrives; go on after 5 s regardless.
    crate::common::util::poll(Duration::from_secs(5), || {
        (!crate::common::util::files_under(&d.data_dir().join("tmp")).is_empty()).then_some(())
    });
    d.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        d.wait_exit(Duration::ZERO).is_none(),
        "daemon exited with an upload in flight"
    );
    conn.send(&data[100_000..]);
    let v = conn.read_response().expect_json(201);
    assert_eq!(v["sha256"], sha256_hex(&data), "{v}");
    drop(conn);
    let st = d
        .wait_exit(Duration::from_secs(7))
        .unwrap_or_else(|| panic!("daemon still running 7 s after SIGTERM"));
    assert!(st.success(), "exit status {st} after a drained SIGTERM");

    d.start_again();
    let c = Client::new(&d);
    assert_eq!(
        c.content(&id_of(&v)).expect(200).body,
        data,
        "the drained upload did not survive"
    );
}
