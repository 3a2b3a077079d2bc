//! Frame decode timings without Python (for profiling the scanner: `cargo bench --bench
//! decode`; env `N` sets the frames per round). Events are built into a reused vector and the
//! resolver knows every symbol, so this is the Rust share of a frame's cost only; the
//! side-by-side comparison against stdlib json lives in `bench/` at the top level.

use std::hint::black_box;
use std::time::Instant;

use _core::decode::{Contract, Proto, Resolve, decode};

/// Every symbol is a linear contract of 0.01 base coin, and every liquidation is wanted.
struct AnySymbol;

impl Resolve for AnySymbol {
    fn contract(&mut self, _symbol: &str) -> Option<Contract> {
        Some(Contract { handle: 0, linear: true, size: 0.01 })
    }

    fn wants_liquidations(&mut self, _symbol: &str) -> bool {
        true
    }
}

const FRAMES: [(&str, Proto, &[u8]); 3] = [
    (
        "binance aggTrade",
        Proto::BinanceUsdm,
        br#"{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1790000000041,"s":"BTCUSDT","a":10000000,"p":"59611.3","q":"1.483","f":1,"l":1,"T":1790000000041,"m":false}}"#,
    ),
    (
        "okx trades",
        Proto::Okx,
        br#"{"arg":{"channel":"trades","instId":"BTC-USDT-SWAP"},"data":[{"instId":"BTC-USDT-SWAP","tradeId":"10000000","px":"59611.3","sz":"148.3","side":"buy","ts":"1790000000041","count":"1"}]}"#,
    ),
    (
        "okx liquidation-orders",
        Proto::Okx,
        br#"{"arg":{"channel":"liquidation-orders","instType":"SWAP"},"data":[{"details":[{"bkLoss":"0","bkPx":"59611.3","ccy":"","posSide":"long","side":"sell","sz":"148.3","ts":"1790000000041"}],"instFamily":"BTC-USDT","instId":"BTC-USDT-SWAP","instType":"SWAP","uly":"BTC-USDT"}]}"#,
    ),
];

fn main() {
    let n: usize = std::env::var("N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let mut out = Vec::new();
    for (name, proto, frame) in FRAMES {
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..n {
                out.clear();
                decode(proto, black_box(frame), &mut AnySymbol, &mut out).expect("the frame decodes");
            }
            best = best.min(t.elapsed().as_secs_f64() / n as f64);
        }
        assert_eq!(out.len(), 1, "{name}: one event");
        println!("{name:>24}: {:6.1} ns per frame ({} bytes)", best * 1e9, frame.len());
    }
}
