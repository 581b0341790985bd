//! The suite's faker locale: `faker = …(locale)` fields speak `SEEDBED_LOCALE`, else
//! `locale` in `seedbed.toml`, else English; a field naming its own locale keeps it. The locale
//! comes from the environment, so each case runs this binary again as a child with its own.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::process::Command;

use fake::faker::name::raw::Name;
use seedbed::factory::{LOCALE_VAR, Locale};
use seedbed::prelude::*;

#[derive(Debug, Factory)]
#[factory(table = "people")]
struct Person {
    #[factory(faker = Name(locale))]
    name: String,
    #[factory(faker = fake::faker::name::fr_fr::Name())]
    french: String,
    #[factory(faker = fake::faker::lorem::raw::Words(locale, 2..3))]
    words: Vec<String>,
}

fn japanese(text: &str) -> bool {
    text.chars().any(|c| ('\u{3040}'..='\u{9fff}').contains(&c))
}

/// Runs the child test `name` with `SEEDBED_LOCALE` set to `locale` (or unset).
fn child(name: &str, locale: Option<&str>) -> (bool, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args([name, "--exact", "--include-ignored", "--test-threads", "1"]);
    match locale {
        Some(l) => command.env(LOCALE_VAR, l),
        None => command.env_remove(LOCALE_VAR),
    };
    let out = command.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn fields_speak_the_suites_locale_unless_they_name_their_own() {
    for (test, locale) in [("child_english", None), ("child_japanese", Some("ja_JP"))] {
        let (ok, output) = child(test, locale);
        assert!(ok, "{test} with {locale:?}:\n{output}");
        assert!(output.contains("1 passed"), "{output}");
    }
}

#[test]
#[ignore = "a child: run in a process of its own, without SEEDBED_LOCALE, by the test above"]
fn child_english() {
    // This crate's seedbed.toml names no locale: English.
    let people = Person::factory().build_list(20);
    assert!(people.iter().all(|p| p.name.is_ascii()), "{people:?}");
}

#[test]
#[ignore = "a child: run in a process of its own, with SEEDBED_LOCALE=ja_JP, by the test above"]
fn child_japanese() {
    let people = Person::factory().build_list(20);
    assert!(people.iter().all(|p| japanese(&p.name)), "{people:?}");
    // A faker with more arguments takes the locale in its place (fake's ja_jp has no words of
    // its own, so they stay Latin).
    assert!(people.iter().all(|p| p.words.len() == 2), "{people:?}");
    // The field that names its locale keeps it.
    assert!(people.iter().all(|p| !japanese(&p.french)), "{people:?}");
}

#[test]
fn the_locale_is_read_from_seedbed_toml_and_a_bad_one_is_named() {
    let dir = std::env::temp_dir().join(format!("seedbed-locale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("seedbed.toml"), "locale = \"de_de\"\n").unwrap();
    let bad = dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("seedbed.toml"), "locale = \"klingon\"\n").unwrap();
    if std::env::var_os(LOCALE_VAR).is_none() {
        assert_eq!(Locale::suite(&dir).unwrap(), Locale::DeDe);
        let err = Locale::suite(&bad).unwrap_err().to_string();
        assert!(
            err.contains("`klingon` is not a locale of the fake crate: choose one of en, fr_fr"),
            "{err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
