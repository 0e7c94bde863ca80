/**
 * Adapter files: safetensors with the record's names, as the parameter-golf fixture's
 * `.ttt.safetensors` holds them — `lora_init.<name>.A` [1, r, in] (or [r, in]) and
 * `lora_init.<name>.B` [1, out, r] (or [out, r]), `<name>` one of `lm_head_lora`, `q_loras.{s}`,
 * `k_loras.{s}`, `v_loras.{s}`, `o_loras.{s}`, `mlp_loras.{s}` (their BatchedTTTLoRA attributes;
 * the leading 1 is their batch of one document). Other tensors in the file are ignored, so the
 * fixture itself can be given. A tensor that does not fit the model is one line naming it.
 *
 * Written back: `lora_final.<name>.A/B` (the trained adapters, as the fixture names them) and
 * `lora_init.<name>.A` (the record's warm start for the next document: A carried over, B reset).
 */
import * as path from 'node:path';
import { BadInputError } from '../errors';
import type { HostTensor } from '../io/tensor';
import { readSafetensors, writeSafetensors } from '../io/safetensors';
import type { AdapterSpec } from './adapters';
import type { AdapterValues } from './lora';

const PREFIX = 'lora_init.';

/** Shape without the record's leading batch of one. */
function unbatched(t: HostTensor): number[] {
  return t.shape.length === 3 && t.shape[0] === 1 ? t.shape.slice(1) : t.shape;
}

/**
 * The starting adapters of `specs` from a file, and the rank they have. `rank` given: it must match.
 * Every adapter needs its A; a missing B starts at zero. Adapters the model has but the run leaves
 * out (`every` minus `specs`: --modules) are skipped; a name the model has no adapter for is an error.
 */
export function readLoraInit(file: string, specs: AdapterSpec[], rank: number | undefined, every: AdapterSpec[] = specs): { values: AdapterValues; rank: number } {
  const name = path.basename(file);
  const tensors = readSafetensors(file).tensors;
  const fail = (m: string): never => {
    throw new BadInputError(`${name}: ${m}`);
  };
  const known = new Set(every.flatMap((s) => [`${PREFIX}${s.name}.A`, `${PREFIX}${s.name}.B`]));
  const ours = [...tensors.keys()].filter((k) => k.startsWith(PREFIX));
  if (!ours.length) fail(`no adapters in this file: expected tensors named ${PREFIX}<module>.A / .B (e.g. ${PREFIX}${specs[0]?.name ?? 'q_loras.0'}.A)`);
  for (const k of ours) if (!known.has(k)) fail(`tensor '${k}' does not fit the model: it has no such adapter (${describe(every)})`);
  let r = rank;
  const values: AdapterValues = new Map();
  for (const s of specs) {
    const aName = `${PREFIX}${s.name}.A`, bName = `${PREFIX}${s.name}.B`;
    const a = tensors.get(aName) ?? fail(`tensor '${aName}' is missing: every adapted module needs its A (or leave the module out with --modules)`);
    if (a.dtype !== 'float32') fail(`tensor '${aName}' is ${a.dtype}, expected a float tensor`);
    const [ar, ain] = unbatched(a);
    r ??= ar;
    if (unbatched(a).length !== 2 || ar !== r || ain !== s.inFeatures) fail(`tensor '${aName}' has shape [${a.shape}], expected [1, ${r}, ${s.inFeatures}] (rank, the module's input width)`);
    values.set(`${s.name}.A`, { shape: [r, s.inFeatures], dtype: 'float32', values: a.values });
    const b = tensors.get(bName);
    if (!b) continue;
    if (b.dtype !== 'float32') fail(`tensor '${bName}' is ${b.dtype}, expected a float tensor`);
    const bs = unbatched(b);
    if (bs.length !== 2 || bs[0] !== s.outFeatures || bs[1] !== r) fail(`tensor '${bName}' has shape [${b.shape}], expected [1, ${s.outFeatures}, ${r}] (the module's output width, rank)`);
    values.set(`${s.name}.B`, { shape: [s.outFeatures, r], dtype: 'float32', values: b.values });
  }
  return { values, rank: r! };
}

function describe(specs: AdapterSpec[]): string {
  const layers = Math.max(-1, ...specs.map((s) => s.layer ?? -1)) + 1;
  const kinds = [...new Set(specs.map((s) => s.name.replace(/\.\d+$/, '')))];
  return `${kinds.join(', ')}${layers ? ` over ${layers} layers (slots 0–${layers - 1})` : ''}`;
}

/** The trained adapters and the warm start for the next document, in the record's layout. */
export function writeAdapters(file: string, final: AdapterValues): void {
  const out = new Map<string, HostTensor>();
  for (const [k, t] of final) {
    const batched: HostTensor = { ...t, shape: [1, ...t.shape] };
    out.set(`lora_final.${k}`, batched);
    if (k.endsWith('.A')) out.set(`${PREFIX}${k}`, batched);
  }
  writeSafetensors(file, out, { metadata: { producer: 'headlens ttt' } });
}
