//! Error text both binaries write the same way: an error with its causes on one line, and the
//! refusal of a settings file's unknown key.

use std::error::Error;
use std::fmt;
use std::path::PathBuf;

/// `first`, then `error`'s causes (not `error` itself), each after `": "`. HTTP clients'
/// messages alone often say only "error sending request"; the cause says why.
pub fn with_causes(first: impl Into<String>, error: &dyn Error) -> String {
    let mut text = first.into();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A key of a settings file that no setting has, most likely a typo: `key` is its dotted path
/// (`tls.cert_fil`), `expected` the keys its table may hold. Both binaries refuse to start with
/// it rather than ignore the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKey {
    pub path: PathBuf,
    pub key: String,
    pub expected: &'static [&'static str],
}

impl fmt::Display for UnknownKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "config file {}: unknown key `{}` (expected one of {})",
            self.path.display(),
            self.key,
            self.expected.join(", ")
        )
    }
}

impl Error for UnknownKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn Error + 'static))
        }
    }

    #[test]
    fn causes_follow_on_one_line() {
        let error = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "tcp connect error",
                Some(Box::new(Layer("Connection refused", None))),
            ))),
        );
        assert_eq!(
            with_causes("could not connect", &error),
            "could not connect: tcp connect error: Connection refused"
        );
        assert_eq!(with_causes("x", &Layer("alone", None)), "x");
    }

    #[test]
    fn an_unknown_key_names_the_file_the_key_and_what_may_stand_there() {
        let e = UnknownKey {
            path: "/etc/pivitals/agent.toml".into(),
            key: "tls.cert_fil".into(),
            expected: &["ca", "insecure_skip_verify"],
        };
        assert_eq!(
            e.to_string(),
            "config file /etc/pivitals/agent.toml: unknown key `tls.cert_fil` (expected one of ca, insecure_skip_verify)"
        );
    }
}
