//! Turning a stream of token pieces into text a client may see: pieces are bytes that may split a
//! UTF-8 character, and stop sequences may span pieces. [`TextStream`] holds back exactly what could
//! still turn out to be part of a character or of a stop sequence, and nothing more, so streamed
//! chunks concatenate to the same text a non-streamed answer gets.

/// What [`TextStream::push`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Text that is final (may be empty).
    Text(String),
    /// A stop sequence appeared: the final text before it. Generation should end.
    Stopped(String),
}

pub struct TextStream {
    stops: Vec<String>,
    /// Bytes not yet valid UTF-8 (an incomplete character at the end).
    bytes: Vec<u8>,
    /// Decoded text not yet released: it may be the start of a stop sequence.
    held: String,
}

impl TextStream {
    pub fn new(stops: Vec<String>) -> Self {
        let stops = stops.into_iter().filter(|s| !s.is_empty()).collect();
        TextStream {
            stops,
            bytes: Vec::new(),
            held: String::new(),
        }
    }

    /// Adds one token's bytes.
    pub fn push(&mut self, piece: &[u8]) -> Pushed {
        self.bytes.extend_from_slice(piece);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(text) => text.len(),
            // An invalid sequence that is not merely cut short is replaced, as from_utf8_lossy does.
            Err(error) if error.error_len().is_some() => {
                let text = String::from_utf8_lossy(&self.bytes).into_owned();
                self.bytes.clear();
                return self.release(&text);
            }
            Err(error) => error.valid_up_to(),
        };
        let text = String::from_utf8(self.bytes.drain(..valid).collect())
            .expect("checked to be valid UTF-8 above");
        self.release(&text)
    }

    /// Ends the stream: everything held back is final (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let mut rest = std::mem::take(&mut self.held);
        rest.push_str(&String::from_utf8_lossy(&self.bytes));
        self.bytes.clear();
        rest
    }

    fn release(&mut self, text: &str) -> Pushed {
        self.held.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let before = self.held[..at].to_string();
            self.held.clear();
            return Pushed::Stopped(before);
        }
        // Keep the longest tail that is a proper prefix of some stop sequence.
        let keep = self
            .stops
            .iter()
            .map(|stop| longest_suffix_prefix(&self.held, stop))
            .max()
            .unwrap_or(0);
        let cut = self.held.len() - keep;
        let out = self.held[..cut].to_string();
        self.held.drain(..cut);
        Pushed::Text(out)
    }
}

/// The length of the longest suffix of `text` that is a proper prefix of `stop`, on character
/// boundaries.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let longest = text.len().min(stop.len().saturating_sub(1));
    (1..=longest)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && stop.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (String, bool) {
        let mut stream = TextStream::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for piece in pieces {
            match stream.push(piece) {
                Pushed::Text(text) => out.push_str(&text),
                Pushed::Stopped(text) => {
                    out.push_str(&text);
                    return (out, true);
                }
            }
        }
        out.push_str(&stream.finish());
        (out, false)
    }

    #[test]
    fn a_character_split_across_pieces_comes_out_whole() {
        let euro = "€".as_bytes();
        let mut stream = TextStream::new(vec![]);
        assert_eq!(stream.push(&euro[..1]), Pushed::Text(String::new()));
        assert_eq!(stream.push(&euro[1..]), Pushed::Text("€".into()));
    }

    #[test]
    fn a_stop_sequence_across_pieces_ends_the_text_before_it() {
        assert_eq!(
            run(&["</s>"], &[b"hello <", b"/", b"s> more"]),
            ("hello ".into(), true)
        );
    }

    #[test]
    fn held_text_that_is_not_a_stop_is_released() {
        let mut stream = TextStream::new(vec!["STOP".into()]);
        assert_eq!(stream.push(b"a ST"), Pushed::Text("a ".into()));
        assert_eq!(stream.push(b"x"), Pushed::Text("STx".into()));
        assert_eq!(run(&["STOP"], &[b"ends ST"]), ("ends ST".into(), false));
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        assert_eq!(run(&[], &[b"a\xffb"]), ("a\u{fffd}b".into(), false));
        assert_eq!(run(&[], &[b"a\xe2\x82"]), ("a\u{fffd}".into(), false));
    }

    #[test]
    fn the_earliest_of_several_stops_wins() {
        assert_eq!(run(&["b", "a"], &[b"xxab"]), ("xx".into(), true));
    }
}
