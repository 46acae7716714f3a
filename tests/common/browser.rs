//! Driving headless Chromium over the DevTools protocol (`headless_chrome`)
//! for the tests of the explorer page.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

use super::PATIENCE;

/// A headless Chromium at `chromium`, its window large enough for the
/// explorer's pages.
pub fn launch(chromium: &Path) -> Result<Browser, String> {
    Browser::new(
        LaunchOptions::default_builder()
            .path(Some(chromium.to_path_buf()))
            .headless(true)
            .sandbox(false)
            .window_size(Some((1300, 1500)))
            .idle_browser_timeout(PATIENCE * 3)
            .build()
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("starting {}: {e}", chromium.display()))
}

pub fn find_chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROME") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Evaluates `expression` in the page; its JSON value (null for none).
pub fn js(tab: &Tab, expression: &str) -> Result<Value, String> {
    let result = tab
        .evaluate(expression, false)
        .map_err(|e| format!("evaluating {expression}: {e}"))?;
    Ok(result.value.unwrap_or(Value::Null))
}

/// Polls `probe` in the page until it gives a value, for at most PATIENCE.
pub fn wait_in_page<T>(
    tab: &Tab,
    what: &str,
    probe: impl FnMut(&Tab) -> Result<Option<T>, String>,
) -> Result<T, String> {
    wait_in_page_for(tab, what, PATIENCE, probe)
}

/// Polls `probe` in the page until it gives a value, for at most `patience`.
pub fn wait_in_page_for<T>(
    tab: &Tab,
    what: &str,
    patience: Duration,
    mut probe: impl FnMut(&Tab) -> Result<Option<T>, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = probe(tab)? {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn screenshot(tab: &Tab, dir: &Path, name: &str) -> Result<(), String> {
    let png = tab
        .capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)
        .map_err(|e| e.to_string())?;
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).map_err(|e| e.to_string())?;
    eprintln!("screenshot {}", path.display());
    Ok(())
}

/// Saves a PNG of the element `selector` only, as `dir/name.png`.
pub fn screenshot_of(tab: &Tab, selector: &str, dir: &Path, name: &str) -> Result<(), String> {
    let png = tab
        .find_element(selector)
        .and_then(|element| element.capture_screenshot(CaptureScreenshotFormatOption::Png))
        .map_err(|e| format!("a screenshot of {selector}: {e}"))?;
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).map_err(|e| e.to_string())?;
    eprintln!("screenshot {}", path.display());
    Ok(())
}

/// Runs `test` as the one trial `name` of a test binary without the
/// standard harness, with the Chromium found. Without one, the binary says
/// why (as `binary`) and the trial counts as ignored (skipped), never as
/// passed.
pub fn run_with_chromium(
    binary: &str,
    name: &'static str,
    test: fn(&Path) -> Result<(), String>,
) -> ! {
    let arguments = libtest_mimic::Arguments::from_args();
    let chromium = find_chromium();
    if chromium.is_none() {
        eprintln!(
            "{binary}: skipped, no Chromium found (looked at $CHROME and for chromium, \
             chromium-browser, google-chrome on PATH; `.ci/run` installs Debian's chromium)"
        );
    }
    let ignored = chromium.is_none();
    let trial = libtest_mimic::Trial::test(name, move || {
        let chromium = chromium.expect("not run when ignored");
        test(&chromium).map_err(libtest_mimic::Failed::from)
    })
    .with_ignored_flag(ignored);
    libtest_mimic::run(&arguments, vec![trial]).exit()
}
