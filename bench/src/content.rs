//! Realistic message bodies for the compression scenarios: deterministic
//! (a seeded generator), valid UTF-8, and as repetitive as real traffic,
//! not more: JSON whose keys repeat and whose values vary, and log lines.

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Words for the JSON body's `note`.
const WORDS: &str = "order shipped customer the and payment received for warehouse north \
                     delayed by weather item back in stock please confirm address update new \
                     price list from supplier was today";

/// A JSON object of exactly `size` bytes (at least 120): an event
/// envelope and a list of items with the same keys, then a `note` string
/// filling the rest. `variant` picks the values.
pub fn json(size: usize, variant: u64) -> Vec<u8> {
    let size = size.max(120);
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    let mut r = Rng::new(variant + 1);
    let mut s = format!(
        "{{\"type\":\"inventory.update\",\"seq\":{},\"ts\":\"2026-11-30T{:02}:{:02}:{:02}.{:03}Z\",\
         \"source\":{{\"region\":\"{}\",\"host\":\"ingest-{:02}\"}},\"items\":[",
        r.below(1_000_000),
        r.below(24),
        r.below(60),
        r.below(60),
        r.below(1000),
        r.pick(&["eu-west-1", "us-east-1", "ap-south-1"]),
        r.below(32),
    );
    let mut first = true;
    loop {
        let item = format!(
            "{}{{\"id\":\"sku-{}\",\"name\":\"{} {}\",\"price\":{}.{:02},\"currency\":\"{}\",\
             \"qty\":{},\"status\":\"{}\",\"tags\":[\"{}\",\"{}\"]}}",
            if first { "" } else { "," },
            r.below(100_000),
            r.pick(&["Steel", "Oak", "Glass", "Cotton", "Copper"]),
            r.pick(&["chair", "table", "lamp", "shelf", "rug", "vase"]),
            r.below(500),
            r.below(100),
            r.pick(&["EUR", "USD", "GBP"]),
            r.below(200),
            r.pick(&["in_stock", "low_stock", "backorder"]),
            r.pick(&["home", "office", "outdoor"]),
            r.pick(&["sale", "new", "popular", "clearance"]),
        );
        // Room for this item, `],"note":""}` and a few words.
        if s.len() + item.len() + 40 > size {
            break;
        }
        s += &item;
        first = false;
    }
    s += "],\"note\":\"";
    let end = "\"}";
    while s.len() + end.len() < size {
        s += r.pick(&words);
        s.push(' ');
    }
    s.truncate(size - end.len());
    s += end;
    s.into_bytes()
}

/// `size` bytes of web-server log lines (the last one cut at `size`).
/// `variant` picks the values.
pub fn log(size: usize, variant: u64) -> Vec<u8> {
    let mut r = Rng::new(variant + 1000);
    let mut s = String::with_capacity(size + 200);
    let mut ms = r.below(3_600_000);
    while s.len() < size {
        ms += r.below(40);
        let status = r.pick(&["200", "200", "200", "200", "304", "201", "404", "500"]);
        s += &format!(
            "2026-11-30T14:{:02}:{:02}.{:03}Z {} api-gw[{}]: {} /api/v1/{}/{}{} {} {}B {}.{}ms \
             ua=\"{}\" req={:016x}\n",
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000,
            if status == "500" { "ERROR" } else { "INFO " },
            3100 + r.below(8),
            r.pick(&["GET", "GET", "GET", "POST", "PUT", "DELETE"]),
            r.pick(&["orders", "users", "items", "carts", "sessions"]),
            r.below(100_000),
            r.pick(&["", "", "?expand=items", "?page=2", "?fields=id,name"]),
            status,
            r.below(20_000),
            r.below(200),
            r.below(10),
            r.pick(&[
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) Safari/605.1.15",
                "okhttp/4.12.0",
                "curl/8.5.0",
            ]),
            r.next(),
        );
    }
    s.truncate(size);
    s.into_bytes()
}

/// The body named by loadgen's `--content`: `json`, `log`, or `None` for
/// an unknown name.
pub fn make(kind: &str, size: usize, variant: u64) -> Option<Vec<u8>> {
    match kind {
        "json" => Some(json(size, variant)),
        "log" => Some(log(size, variant)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sizes_valid_text_and_variants_differ() {
        for size in [120, 1024, 1500, 65536] {
            for v in 0..4 {
                let j = json(size, v);
                assert_eq!(j.len(), size);
                let text = std::str::from_utf8(&j).unwrap();
                assert!(text.starts_with('{') && text.ends_with("\"}"), "{text}");
                let l = log(size, v);
                assert_eq!(l.len(), size);
                assert!(std::str::from_utf8(&l).is_ok());
            }
            assert_ne!(json(size, 0), json(size, 1));
            assert_ne!(log(size, 0), log(size, 1));
        }
    }
}
