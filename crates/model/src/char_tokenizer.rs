//! A character-level tokenizer for the synthetic arithmetic tasks: one token per character of
//! `Q:4821+5377=` and the column work, plus the template tags.
//!
//! A real `tokenizers` tokenizer (WordLevel model, a pre-tokenizer that splits every character,
//! a Fuse decoder that concatenates), saved as an ordinary `tokenizer.json` that transformers
//! loads. The vocabulary is 21 tokens, so the model's embedding and output layer cost next to
//! nothing and every sampled token is a meaningful step of the column work. `aha demo` and the
//! `demo_tiny` init preset use it; a byte-level BPE for general text is [`crate::init`]'s.
//!
//! The four tags are *added tokens that are not special* (as Qwen3 does with `<think>`): they are
//! matched whole before splitting and survive `decode(…, skip_special_tokens = true)`, which the
//! verifier needs. Only `<|endoftext|>` (end of sequence and padding) is special.

use crate::tokenizer::{Tokenizer, TokenizerConfig};
use crate::{Error, Result};

/// End of sequence, also used as padding.
pub const EOS: &str = "<|endoftext|>";
/// Stands for any character outside the alphabet (the tasks' own texts never produce it).
pub const UNK: &str = "<unk>";
/// The template tags, in id order after [`EOS`] and [`UNK`].
pub const TAGS: [&str; 4] = ["<think>", "</think>", "<answer>", "</answer>"];
/// Every character the arithmetic tasks' texts use.
pub const ALPHABET: &str = "0123456789+=Q: ";

/// The tokens in id order.
pub fn vocabulary() -> Vec<String> {
    let mut v = vec![EOS.to_string(), UNK.to_string()];
    v.extend(TAGS.iter().map(|t| t.to_string()));
    v.extend(ALPHABET.chars().map(|c| c.to_string()));
    v
}

/// The tokenizer as `tokenizer.json` text.
pub fn tokenizer_json() -> String {
    let vocab: serde_json::Map<String, serde_json::Value> = vocabulary()
        .into_iter()
        .enumerate()
        .map(|(id, tok)| (tok, serde_json::Value::from(id)))
        .collect();
    let added = |id: usize, content: &str, special: bool| {
        serde_json::json!({
            "id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": special,
        })
    };
    let mut added_tokens = vec![added(0, EOS, true), added(1, UNK, true)];
    added_tokens.extend(TAGS.iter().enumerate().map(|(i, t)| added(i + 2, t, false)));
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added_tokens,
        "normalizer": null,
        "pre_tokenizer": {
            "type": "Split", "pattern": {"Regex": "."}, "behavior": "Isolated", "invert": false,
        },
        "post_processor": null,
        "decoder": {"type": "Fuse"},
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK},
    });
    // A json! value always serialises.
    serde_json::to_string_pretty(&json).unwrap_or_default()
}

/// The character tokenizer, `<|endoftext|>` as EOS and padding (so checkpoints saved with it
/// stop where the model does).
pub fn char_tokenizer() -> Result<Tokenizer> {
    let inner = tokenizer_json()
        .parse::<tokenizers::Tokenizer>()
        .map_err(|e| Error::Tokenizer {
            path: "<character tokenizer>".into(),
            message: e.to_string(),
        })?;
    let config = TokenizerConfig {
        eos_token: Some(EOS.into()),
        pad_token: Some(EOS.into()),
        ..TokenizerConfig::default()
    };
    Tokenizer::from_parts(inner, config)
}

/// The id of `token`, one of [`vocabulary`]'s.
pub fn token_id(tok: &Tokenizer, token: &str) -> Result<u32> {
    tok.token_to_id(token)
        .ok_or_else(|| Error::Input(format!("{token:?} is not in the character vocabulary")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_per_character_and_tag() {
        let tok = char_tokenizer().unwrap();
        assert_eq!(tok.vocab_size(), 21);
        let text =
            "Q:4821+5377=<think>1+7+0=08 2+7+0=09 8+3+0=11 4+5+1=10</think><answer>10198</answer>";
        let ids = tok.encode(text, false).unwrap();
        // 12 prompt characters, 2 + 35 think, 2 + 5 answer.
        assert_eq!(ids.len(), 12 + 37 + 7);
        assert_eq!(ids[12], token_id(&tok, "<think>").unwrap());
        assert!(!ids.contains(&token_id(&tok, UNK).unwrap()));
        let mut with_eos = ids.clone();
        with_eos.push(token_id(&tok, EOS).unwrap());
        assert_eq!(tok.decode(&with_eos, true).unwrap(), text);
        assert_eq!(tok.eos_token_ids(), vec![0]);
    }

    #[test]
    fn direct_answer_is_eight_tokens_with_eos() {
        let tok = char_tokenizer().unwrap();
        assert_eq!(
            tok.encode("<answer>10198</answer>", false).unwrap().len() + 1,
            8
        );
    }

    #[test]
    fn foreign_characters_become_unk() {
        let tok = char_tokenizer().unwrap();
        let ids = tok.encode("Q:é", false).unwrap();
        assert_eq!(ids[2], token_id(&tok, UNK).unwrap());
    }
}
