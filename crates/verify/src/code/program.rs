//! Finding the program in a completion: the last closed ```` ```python ```` fenced block.
//!
//! One pass over the lines, so the work is linear in the completion whatever it holds. A fence
//! is a line whose first non-blank characters are three or more backticks; a block opened with
//! an info string (`python`, `py`, `python3`, any case) closes at the next bare fence. Blocks in
//! other languages are skipped whole, so a python fence quoted inside a ```` ```markdown ````
//! block is not taken. An unclosed block (a completion cut at the token limit) is no program.

/// The source of the last closed python block of `completion`, or `None`.
pub fn extract_program(completion: &str) -> Option<&str> {
    let mut last = None;
    // (is python, byte offset where the block's body starts) of the open block.
    let mut open: Option<(bool, usize)> = None;
    let mut pos = 0;
    for line in completion.split_inclusive('\n') {
        let start = pos;
        pos += line.len();
        let Some(info) = fence_info(line) else {
            continue;
        };
        match open {
            None => open = Some((is_python(info), pos)),
            Some((python, body)) if info.is_empty() => {
                if python {
                    last = Some(&completion[body..start]);
                }
                open = None;
            }
            // A fence with an info string inside a block is content, not a close.
            Some(_) => {}
        }
    }
    last
}

/// The trimmed info string after a fence, or `None` when the line is not a fence.
fn fence_info(line: &str) -> Option<&str> {
    let t = line.trim();
    let ticks = t.bytes().take_while(|&b| b == b'`').count();
    (ticks >= 3).then(|| t[ticks..].trim())
}

fn is_python(info: &str) -> bool {
    let lang = info.split_whitespace().next().unwrap_or("");
    ["python", "py", "python3"]
        .iter()
        .any(|p| lang.eq_ignore_ascii_case(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_last_closed_python_block() {
        let c =
            "Try:\n```python\nprint(1)\n```\nBetter:\n```Python\nprint(2)\nprint(3)\n```\nDone.";
        assert_eq!(extract_program(c), Some("print(2)\nprint(3)\n"));
        assert_eq!(extract_program("```py\nx=1\n```"), Some("x=1\n"));
        assert_eq!(
            extract_program("  ```python3 \r\nx\r\n  ```  "),
            Some("x\r\n")
        );
        assert_eq!(extract_program("```python\n```"), Some(""));
    }

    #[test]
    fn refuses_what_is_not_a_closed_python_block() {
        assert_eq!(extract_program("print(1)"), None);
        assert_eq!(extract_program("```\nprint(1)\n```"), None);
        assert_eq!(extract_program("```cpp\nint main(){}\n```"), None);
        // Cut at the token limit: the earlier complete block is the answer.
        let cut = "```python\nprint(1)\n```\n```python\nprint(2)";
        assert_eq!(extract_program(cut), Some("print(1)\n"));
        // A python fence quoted inside a markdown block is content.
        let quoted = "```markdown\n```python\nprint(9)\n```\n";
        assert_eq!(extract_program(quoted), None);
        assert_eq!(extract_program("``python\nx\n``"), None);
    }

    #[test]
    fn linear_on_adversarial_input() {
        let many = "```python\n".repeat(200_000) + "```\n";
        let t = std::time::Instant::now();
        // The first fence opens; the later python fences are content until the bare one.
        assert_eq!(extract_program(&many).map(str::len), Some(10 * 199_999));
        let fences = "```\n".repeat(500_000);
        assert_eq!(extract_program(&fences), None);
        assert!(t.elapsed().as_secs_f64() < 1.0, "{:?}", t.elapsed());
    }
}
