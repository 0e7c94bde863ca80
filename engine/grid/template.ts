/**
 * The built-in grid template: the seed autoresearch issue "Attention patterns, GQA, head dim, value
 * embeddings, softcap" as data, on the autoresearch family (engine/models/autoresearch.ts and its
 * knobs) with a base config small enough for a CPU: 4 layers of width 64 with 4 heads of 16 (their
 * run: 8 layers of 512, 4 heads of 128), 64-token windows (theirs 2048), GPT-2's vocabulary (our
 * trainer's tokenizer). Their knobs keep their meaning at this size: window patterns over 4 layers
 * (the last forced L), value embeddings on alternate/all/no layers, the gate learned or fixed at 1,
 * the logit cap, head width halved (their 128 → 64: twice the heads), kv heads halved or one, and
 * GQA's saved parameters spent on one more layer.
 */
import { BadInputError } from '../errors';

export const GRID_TEMPLATES = ['autoresearch'] as const;

/** One row of the seed's table: id, what changes, the config change, wave, priority. */
type Row = [id: string, change: string, config: Record<string, unknown>, wave: number, priority?: 'low'];

const AUTORESEARCH_ROWS: Row[] = [
  ['2A', 'window pattern SSLL', { window_pattern: 'SSLL' }, 1],
  ['2C', 'window pattern SL', { window_pattern: 'SL' }, 1],
  ['5A', 'value embeddings on every layer', { value_embeds: 'all' }, 1],
  ['5B', 'no value embeddings', { value_embeds: 'none' }, 1],
  ['6A', 'softcap 30', { softcap: 30 }, 1],
  ['6B', 'no softcap', { softcap: null }, 1],
  ['2B', 'window pattern L', { window_pattern: 'L' }, 1, 'low'],
  ['2D', 'window pattern SSSLSSLL', { window_pattern: 'SSSLSSLL' }, 1, 'low'],
  ['5C', 'fixed value-embedding gate', { ve_gate: 'fixed' }, 1, 'low'],
  ['7A', 'head dim 64 (twice the heads): here half the head width', { n_head: '=n_head*2', n_kv_head: '=n_kv_head*2' }, 2],
  ['4A', 'n_kv_head = n_head / 2', { n_kv_head: '=n_head/2' }, 2],
  ['4B', 'MQA (n_kv_head = 1)', { n_kv_head: 1 }, 2, 'low'],
  ['4C', 'GQA + the memory saved spent on depth', { n_kv_head: '=n_head/2', n_layer: '=n_layer+1' }, 2],
];

/** The template spec as JSON-ready data; `data` fills its data field (default: a `data` folder beside the spec). */
export function gridTemplate(name = 'autoresearch', data?: string[]): Record<string, unknown> {
  if (name !== 'autoresearch') throw new BadInputError(`unknown grid template '${name}'; the built-in one is ${GRID_TEMPLATES.join(', ')}`);
  return {
    name: 'autoresearch: attention patterns, GQA, head dim, value embeddings, softcap',
    description: 'The seed issue\'s experiment table on a CPU-sized autoresearch model. Paths are relative to this file; edit "data" to point at your text. Override a wave\'s winner with "choose": {"wave1": "5A"}.',
    family: 'autoresearch',
    base: { vocab_size: 50257, n_layer: 4, n_embd: 64, n_head: 4, n_kv_head: 4, sequence_len: 64, window_pattern: 'SSSL', value_embeds: 'alternate', ve_gate: 'learned', softcap: 15 },
    data: data?.length ? data : ['data'],
    budget: { steps: 60, seconds: null },
    train: { batchSize: 4, seqLen: 64, lr: 0.003, minLr: 0.0003, warmup: 5, evalInterval: 10, evalIters: 4 },
    seeds: [1337],
    waves: { 1: { from: 'baseline' }, 2: { from: 'winner' }, 3: { from: 'winner' } },
    choose: {},
    lowPriority: 'run',
    variants: [
      ...AUTORESEARCH_ROWS.map(([id, change, config, wave, priority]) => ({ id, change, wave, ...(priority ? { priority } : {}), config })),
      { id: '3A', change: 'combine the winners', wave: 3, combine: true },
    ],
  };
}
