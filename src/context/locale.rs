//! The suite's faker locale: which language `faker = …(locale)` fields speak.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The variable that sets the suite's faker locale, over `seedbed.toml`.
pub const LOCALE_VAR: &str = "SEEDBED_LOCALE";

/// A locale of the `fake` crate, for the fields whose faker names `locale` in place of one:
/// `#[factory(faker = fake::faker::name::raw::Name(locale))]` speaks the suite's locale, set by
/// `SEEDBED_LOCALE`, else `locale = "…"` in `seedbed.toml` (or `[package.metadata.seedbed]`),
/// else English. A field that names a locale itself (`fake::faker::name::fr_fr::Name()`) keeps
/// it: that is the per-field override.
///
/// ```
/// use seedbed::factory::Locale;
///
/// assert_eq!("fr_FR".parse::<Locale>().unwrap(), Locale::FrFr);
/// assert_eq!("de-de".parse::<Locale>().unwrap(), Locale::DeDe);
/// assert_eq!(Locale::JaJp.to_string(), "ja_jp");
/// let err = "klingon".parse::<Locale>().unwrap_err().to_string();
/// assert!(err.contains("en, fr_fr"), "{err}");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[allow(missing_docs, reason = "each variant is its locale's name")]
pub enum Locale {
    #[default]
    En,
    FrFr,
    ZhTw,
    ZhCn,
    ArSa,
    JaJp,
    PtBr,
    PtPt,
    DeDe,
    ItIt,
    CyGb,
    NlNl,
    TrTr,
    FaIr,
}

impl Locale {
    /// Every locale, in `fake`'s order.
    pub const ALL: [Locale; 14] = [
        Locale::En,
        Locale::FrFr,
        Locale::ZhTw,
        Locale::ZhCn,
        Locale::ArSa,
        Locale::JaJp,
        Locale::PtBr,
        Locale::PtPt,
        Locale::DeDe,
        Locale::ItIt,
        Locale::CyGb,
        Locale::NlNl,
        Locale::TrTr,
        Locale::FaIr,
    ];

    /// The name, as `fake`'s modules spell it (`fr_fr`).
    pub fn name(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::FrFr => "fr_fr",
            Locale::ZhTw => "zh_tw",
            Locale::ZhCn => "zh_cn",
            Locale::ArSa => "ar_sa",
            Locale::JaJp => "ja_jp",
            Locale::PtBr => "pt_br",
            Locale::PtPt => "pt_pt",
            Locale::DeDe => "de_de",
            Locale::ItIt => "it_it",
            Locale::CyGb => "cy_gb",
            Locale::NlNl => "nl_nl",
            Locale::TrTr => "tr_tr",
            Locale::FaIr => "fa_ir",
        }
    }

    /// The suite's locale for the crate at `root`: `SEEDBED_LOCALE`, else `locale` in its
    /// `seedbed.toml` or `[package.metadata.seedbed]`, else English. A name that is no locale is
    /// [`Error::Config`] (a `#[seedbed::test]` fails with it at its start).
    pub fn suite(root: &Path) -> Result<Locale> {
        if let Some(value) = crate::util::env::text(LOCALE_VAR) {
            return value
                .parse()
                .map_err(|e: Error| Error::Config(format!("{LOCALE_VAR}: {e}")));
        }
        match crate::strategy::suite_string(root, "locale", "a locale of the fake crate")? {
            Some(value) => value.parse().map_err(|e: Error| {
                Error::Config(format!("the locale of {}: {e}", root.display()))
            }),
            None => Ok(Locale::En),
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Locale {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        Locale::ALL
            .into_iter()
            .find(|l| l.name() == wanted || (wanted == "en_us" && *l == Locale::En))
            .ok_or_else(|| {
                let names: Vec<&str> = Locale::ALL.iter().map(|l| l.name()).collect();
                Error::Config(format!(
                    "`{s}` is not a locale of the fake crate: choose one of {}",
                    names.join(", ")
                ))
            })
    }
}
