//! The example alerting rules in deploy/prometheus: valid for promtool,
//! passing their own unit tests (series that must and must not fire each
//! rule), and still valid once shortened for the tests that watch them fire
//! against the agent. Needs promtool, not root and not the agent.
use integration_tests::{
    apps::TempDir,
    function_name,
    prometheus::{self, EXAMPLE_RULES_TESTS, TEST_SUBSTITUTIONS},
    skip::{repo_root, skip},
};

/// The rules the example file defines; a rule added or removed must be
/// added to or removed from its unit tests too.
const EXAMPLE_RULE_COUNT: usize = 4;

/// Prints why and gives false when promtool is not installed.
fn have_promtool(test: &str) -> bool {
    match prometheus::promtool_bin() {
        Ok(_) => true,
        Err(reason) => {
            skip(test, &reason);
            false
        }
    }
}

#[test]
fn example_rules_pass_promtool_check() -> anyhow::Result<()> {
    if !have_promtool(function_name!()) {
        return Ok(());
    }
    let output = prometheus::promtool_check_rules(&prometheus::example_rules())?;
    assert_eq!(
        prometheus::rules_found(&output),
        Some(EXAMPLE_RULE_COUNT),
        "{output}"
    );
    Ok(())
}

#[test]
fn example_rules_pass_their_unit_tests() -> anyhow::Result<()> {
    if !have_promtool(function_name!()) {
        return Ok(());
    }
    let output = prometheus::promtool_test_rules(&repo_root().join(EXAMPLE_RULES_TESTS))?;
    assert!(output.contains("SUCCESS"), "{output}");
    Ok(())
}

#[test]
fn shortened_rules_stay_valid() -> anyhow::Result<()> {
    if !have_promtool(function_name!()) {
        return Ok(());
    }
    let dir = TempDir::new("tracer-alert-rules")?;
    let short = prometheus::rules_for_test(&prometheus::example_rules(), &dir.path)?;
    let text = std::fs::read_to_string(&short)?;
    for (long, _) in TEST_SUBSTITUTIONS {
        assert!(
            !text.contains(long),
            "{long} left in {}:\n{text}",
            short.display()
        );
    }
    assert!(text.contains("[15s]") && text.contains("for: 1s"), "{text}");
    let output = prometheus::promtool_check_rules(&short)?;
    assert_eq!(
        prometheus::rules_found(&output),
        Some(EXAMPLE_RULE_COUNT),
        "{output}"
    );
    Ok(())
}
