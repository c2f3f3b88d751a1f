//! Stop strings: does the completion's decoded text, up to its newest token, contain one?
//!
//! The check runs after every sampled token, so a stop string can only newly appear in text that
//! ends with the newest token. Instead of re-decoding the whole completion each step (quadratic),
//! only the last `window` tokens are decoded: every token decodes to at least one byte, so a stop
//! string of L bytes spans at most L tokens, plus up to 3 more whose bytes may complete a UTF-8
//! character the window would otherwise start in the middle of. Special tokens are decoded as
//! their text (not skipped), which keeps the one-byte guarantee.
//!
//! Not here: EOS ids (the engine checks those), trimming the stop string from the output (the
//! completion keeps the token that completed it, as the trainer must score what was sampled).

use aha_model::tokenizer::Tokenizer;

use super::EngineError;

type DecodeFn<'a> = dyn Fn(&[u32]) -> Result<String, String> + Send + Sync + 'a;

/// Stop strings and the detokenizer they are matched through.
pub struct StopMatcher<'a> {
    stops: Vec<String>,
    window: usize,
    decode: Box<DecodeFn<'a>>,
}

impl std::fmt::Debug for StopMatcher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopMatcher")
            .field("stops", &self.stops)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl<'a> StopMatcher<'a> {
    /// Match `stops` through the checkpoint's tokenizer, special tokens decoded as their text.
    /// Ids the tokenizer lacks (a model vocabulary padded past the tokenizer's) decode to nothing.
    pub fn new(tokenizer: &'a Tokenizer, stops: &[String]) -> Result<Self, EngineError> {
        let inner = tokenizer.inner();
        Self::with_decoder(stops, move |ids: &[u32]| {
            inner.decode(ids, false).map_err(|e| e.to_string())
        })
    }

    /// Match `stops` through any detokenizer `decode(ids) -> text`, which must turn every token
    /// into at least one byte of text.
    pub fn with_decoder(
        stops: &[String],
        decode: impl Fn(&[u32]) -> Result<String, String> + Send + Sync + 'a,
    ) -> Result<Self, EngineError> {
        if let Some(i) = stops.iter().position(|s| s.is_empty()) {
            return Err(EngineError::Params(format!("stop string {i} is empty")));
        }
        let longest = stops.iter().map(|s| s.len()).max().unwrap_or(0);
        Ok(Self {
            stops: stops.to_vec(),
            window: longest + 3,
            decode: Box::new(decode),
        })
    }

    pub fn stops(&self) -> &[String] {
        &self.stops
    }

    /// Whether the text of `completion` contains a stop string that ends in its last token.
    pub fn is_stopped(&self, completion: &[u32]) -> Result<bool, EngineError> {
        if self.stops.is_empty() || completion.is_empty() {
            return Ok(false);
        }
        let start = completion.len().saturating_sub(self.window);
        let text = (self.decode)(&completion[start..]).map_err(EngineError::Decode)?;
        Ok(self.stops.iter().any(|s| text.contains(s.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte-level detokenizer: token i < 256 is byte i, as in GPT-2-style vocabularies.
    fn bytes(ids: &[u32]) -> Result<String, String> {
        let b: Vec<u8> = ids.iter().map(|&i| i as u8).collect();
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    fn ids(s: &str) -> Vec<u32> {
        s.bytes().map(u32::from).collect()
    }

    #[test]
    fn finds_a_stop_ending_in_the_last_token() {
        let m = StopMatcher::with_decoder(&["</answer>".into(), "\n\n".into()], bytes).unwrap();
        let text = ids("a long preamble that is longer than the window <answer>42</answer>");
        let first = (1..=text.len())
            .find(|&n| m.is_stopped(&text[..n]).unwrap())
            .unwrap();
        assert_eq!(first, text.len());
        assert!(m.is_stopped(&ids("x\n\n")).unwrap());
        assert!(!m.is_stopped(&ids("x\n")).unwrap());
    }

    #[test]
    fn multibyte_stop_split_across_tokens() {
        let m = StopMatcher::with_decoder(&["→".into()], bytes).unwrap();
        let t = ids("ab→");
        assert!(!m.is_stopped(&t[..t.len() - 1]).unwrap());
        assert!(m.is_stopped(&t).unwrap());
    }

    #[test]
    fn empty_stop_is_an_error() {
        assert!(StopMatcher::with_decoder(&["".into()], bytes).is_err());
    }
}
