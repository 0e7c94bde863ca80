/**
 * `headlens train-bench`: training throughput (tokens/s, median over steps after a warm-up) for the
 * tiny config (d 64, 2 layers, T 64, batch 4) and the full-size a-gpt adaptive model (d 256,
 * 4 layers, T 256, batch 8) on the active backend, one fixed random batch.
 */
import type { Family } from '../protocol';
import { initBackend, tfjsChoiceOf } from '../runtime/tfjs/backend';
import { parseArgs } from '../cli/args';
import { TfModel as Model } from '../runtime/tfjs/model';
import { defaultConfig } from '../models/config';
import { median } from '../cli/bench';
import { Rng } from './rng';
import { DEFAULT_OPTIONS, Trainer } from './trainer';

interface Case {
  name: string;
  family: Family;
  config: { n_layer: number; n_embd: number; n_head: number; block_size: number };
  B: number;
  T: number;
  steps: number;
}

export async function runTrainBench(argv: string[]): Promise<number> {
  const o = parseArgs(argv, { backend: 'string', steps: 'int', only: 'string', debug: 'boolean', 'micro-tokens': 'int' }, 'train-bench');
  const state = await initBackend(tfjsChoiceOf((o.backend as string | undefined) ?? 'auto'));
  const all: Case[] = [
    { name: 'tiny adaptive (d 64, 2 layers)', family: 'adaptive', config: { n_layer: 2, n_embd: 64, n_head: 4, block_size: 64 }, B: 4, T: 64, steps: (o.steps as number) ?? 5 },
    { name: 'tiny base (d 64, 2 layers)', family: 'base', config: { n_layer: 2, n_embd: 64, n_head: 4, block_size: 64 }, B: 4, T: 64, steps: (o.steps as number) ?? 5 },
    { name: 'full adaptive (d 256, 4 layers)', family: 'adaptive', config: { n_layer: 4, n_embd: 256, n_head: 4, block_size: 256 }, B: 8, T: 256, steps: (o.steps as number) ?? 3 },
  ];
  const cases = all.filter((c) => !o.only || c.name.startsWith(o.only as string));
  process.stdout.write(`training throughput on ${state.info.name} (${state.device.name}); median over steps after one warm-up step\n`);
  process.stdout.write(`${'model'.padEnd(34)}${'batch'.padStart(8)}${'s/step'.padStart(10)}${'tokens/s'.padStart(11)}\n`);
  for (const c of cases) {
    const config = defaultConfig(c.family, { ...c.config, vocab_size: 50257 });
    const model = Model.init(config, 3);
    const rng = new Rng(5);
    const ids = Int32Array.from({ length: c.B * c.T }, () => rng.int(0, 50257));
    const targets = Int32Array.from({ length: c.B * c.T }, () => rng.int(0, 50257));
    const trainer = new Trainer(model, { kind: 'fixed', batch: { B: c.B, T: c.T, inputIds: ids, targets } }, { ...DEFAULT_OPTIONS, steps: c.steps + 1, batchSize: c.B, seqLen: c.T, warmup: 0, probeInterval: 0, microTokens: (o['micro-tokens'] as number | undefined) ?? DEFAULT_OPTIONS.microTokens }, 'bench', () => {});
    const secs: number[] = [];
    for (let s = 0; s <= c.steps; s++) {
      const r = await trainer.trainStep();
      if (r && s > 0) secs.push(r.seconds);
    }
    const m = median(secs);
    process.stdout.write(`${c.name.padEnd(34)}${`${c.B}×${c.T}`.padStart(8)}${m.toFixed(2).padStart(10)}${((c.B * c.T) / m).toFixed(0).padStart(11)}\n`);
    trainer.dispose();
    model.dispose();
  }
  return 0;
}
