use candle_core::Device;
use llmpmd::runner::llama::Part;
use llmpmd::runner::model::Model;
use std::time::Instant;
fn main() {
    let path = std::env::args().nth(1).unwrap();
    let m = Model::load(std::path::Path::new(&path), &Device::Cpu).unwrap();
    {
        let toks: Vec<u32> = (0..512).map(|i| (i % 1000 + 10) as u32).collect();
        let mut c = m.new_cache(1024);
        let t0 = Instant::now();
        m.forward(&toks, &mut c).unwrap();
        let dt = t0.elapsed().as_secs_f64();
        println!("prefill 512: {:.2} s, {:.2} tok/s", dt, 512.0 / dt);
    }
    for b in [1usize, 4] {
        let mut caches: Vec<_> = (0..b).map(|_| m.new_cache(256)).collect();
        let toks: Vec<Vec<u32>> = (0..b).map(|i| vec![1, 2 + i as u32, 3, 4]).collect();
        {
            let mut parts: Vec<Part> = caches
                .iter_mut()
                .zip(&toks)
                .map(|(c, t)| Part {
                    tokens: t,
                    cache: c,
                    logits: true,
                })
                .collect();
            m.forward_batch(&mut parts).unwrap();
        }
        let steps = 10;
        let t0 = Instant::now();
        for s in 0..steps {
            let one: Vec<Vec<u32>> = (0..b).map(|i| vec![(5 + s + i) as u32]).collect();
            let mut parts: Vec<Part> = caches
                .iter_mut()
                .zip(&one)
                .map(|(c, t)| Part {
                    tokens: t,
                    cache: c,
                    logits: true,
                })
                .collect();
            m.forward_batch(&mut parts).unwrap();
        }
        let dt = t0.elapsed().as_secs_f64();
        println!(
            "batch {b}: {:.1} ms/step, {:.2} tok/s aggregate",
            dt * 1000.0 / steps as f64,
            (b * steps) as f64 / dt
        );
    }
}
#[allow(dead_code)]
fn unused() {}
