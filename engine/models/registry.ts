/**
 * Every family Head Lens knows, by name, and what follows from a family's definition alone:
 * its parameter list, parameter count, shape checks against a checkpoint, and the model facts the
 * views need (layers, heads, GQA, windows, signals).
 */
import type { Family, ModelConfig } from '../protocol';
import { BadInputError } from '../errors';
import type { FamilyDef, ParamSpec } from './family';
import type { RawCheckpoint } from '../io/checkpoint';
import { AGPT } from './agpt';
import { PARAMGOLF } from './paramgolf';
import { GPT2 } from './gpt2';
import { AUTORESEARCH } from './autoresearch';
import { TLORA } from './tlora';

/** Built on first use: family modules import shared helpers, so no definition is read at load time. */
let defs: FamilyDef[] | null = null;

export function familyDef(family: Family): FamilyDef {
  defs ??= [TLORA, PARAMGOLF, AUTORESEARCH, GPT2, AGPT];
  const def = defs.find((d) => d.families.includes(family));
  if (!def) throw new BadInputError(`family '${family}' has no model definition`);
  return def;
}

/** The family that recognises a checkpoint's tensors (most specific first), or null. */
export function recogniseFamily(raw: RawCheckpoint): FamilyDef | null {
  defs ??= [TLORA, PARAMGOLF, AUTORESEARCH, GPT2, AGPT];
  return defs.find((d) => d.recognise(raw)) ?? null;
}

export function parameterSpecs(c: ModelConfig): ParamSpec[] {
  return familyDef(c.family).parameters(c);
}

/** [name, PyTorch shape] in `model.parameters()` order. */
export function parameterList(c: ModelConfig): [string, number[]][] {
  return parameterSpecs(c).map((p) => [p.name, p.shape]);
}

export function countParams(c: ModelConfig): number {
  return parameterSpecs(c).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** Every expected tensor present with its exact shape; nothing unexpected left over. */
export function checkShapes(c: ModelConfig, shapes: Map<string, number[]>, file: string, ignore: RegExp = /rope_(cos|sin)$/): void {
  const expected = parameterSpecs(c);
  for (const { name, shape } of expected) {
    const got = shapes.get(name);
    if (!got) throw new BadInputError(`${file}: missing tensor '${name}' (expected shape [${shape}]) for a ${c.family} model`);
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      throw new BadInputError(`${file}: tensor '${name}' has shape [${got}] but the ${c.family} config needs [${shape}] (check the config: n_head, n_kv_head, … or --config)`);
    }
  }
  const known = new Set(expected.map((p) => p.name));
  const extra = [...shapes.keys()].filter((n) => !known.has(n) && !ignore.test(n));
  if (extra.length) throw new BadInputError(`${file}: unexpected tensor '${extra[0]}'${extra.length > 1 ? ` (+${extra.length - 1} more)` : ''} for a ${c.family} model`);
}
