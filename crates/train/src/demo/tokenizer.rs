//! The demo's tokenizer: one token per character of the task's alphabet, plus the template tags.
//!
//! A real `tokenizers` tokenizer (WordLevel model, a pre-tokenizer that splits every character,
//! a Fuse decoder that concatenates), saved as an ordinary `tokenizer.json` that transformers
//! loads. The vocabulary is 21 tokens, so the model's embedding and output layer cost next to
//! nothing and every sampled token is a meaningful step of the column work.
//!
//! The four tags are *added tokens that are not special* (as Qwen3 does with `<think>`): they are
//! matched whole before splitting and survive `decode(…, skip_special_tokens = true)`, which the
//! verifier needs. Only `<|endoftext|>` (end of sequence and padding) is special.

use tokenizers::Tokenizer;

use super::DemoError;

/// End of sequence, also used as padding.
pub const EOS: &str = "<|endoftext|>";
/// Stands for any character outside the alphabet (the demo's own texts never produce it).
pub const UNK: &str = "<unk>";
/// The template tags, in id order after [`EOS`] and [`UNK`].
pub const TAGS: [&str; 4] = ["<think>", "</think>", "<answer>", "</answer>"];
/// Every character the task's texts use.
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

/// The demo tokenizer, built from [`tokenizer_json`].
pub fn demo_tokenizer() -> Result<Tokenizer, DemoError> {
    tokenizer_json()
        .parse::<Tokenizer>()
        .map_err(|e| DemoError::Tokenizer(e.to_string()))
}

/// Token ids of `text` (no special tokens added).
pub fn encode(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, DemoError> {
    let enc = tok
        .encode(text, false)
        .map_err(|e| DemoError::Tokenizer(format!("encoding {text:?}: {e}")))?;
    Ok(enc.get_ids().to_vec())
}

/// Text of `ids`, dropping only `<|endoftext|>` and `<unk>`.
pub fn decode(tok: &Tokenizer, ids: &[u32]) -> Result<String, DemoError> {
    tok.decode(ids, true)
        .map_err(|e| DemoError::Tokenizer(format!("decoding {ids:?}: {e}")))
}

/// The id of a token of [`vocabulary`].
pub fn token_id(tok: &Tokenizer, token: &str) -> Result<u32, DemoError> {
    tok.token_to_id(token)
        .ok_or_else(|| DemoError::Tokenizer(format!("{token:?} is not in the demo vocabulary")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_token_per_character_and_tag() {
        let tok = demo_tokenizer().unwrap();
        assert_eq!(tok.get_vocab_size(true), 21);
        let text =
            "Q:4821+5377=<think>1+7+0=08 2+7+0=09 8+3+0=11 4+5+1=10</think><answer>10198</answer>";
        let ids = encode(&tok, text).unwrap();
        // 12 prompt characters, 2 + 35 think, 2 + 5 answer.
        assert_eq!(ids.len(), 12 + 37 + 7);
        assert_eq!(ids[12], token_id(&tok, "<think>").unwrap());
        assert!(!ids.contains(&token_id(&tok, UNK).unwrap()));
        let mut with_eos = ids.clone();
        with_eos.push(token_id(&tok, EOS).unwrap());
        assert_eq!(decode(&tok, &with_eos).unwrap(), text);
    }

    #[test]
    fn direct_answer_is_eight_tokens_with_eos() {
        let tok = demo_tokenizer().unwrap();
        assert_eq!(encode(&tok, "<answer>10198</answer>").unwrap().len() + 1, 8);
    }

    #[test]
    fn foreign_characters_become_unk() {
        let tok = demo_tokenizer().unwrap();
        let ids = encode(&tok, "Q:é").unwrap();
        assert_eq!(ids[2], token_id(&tok, UNK).unwrap());
    }
}
