/**
 * Temporal LoRA's checkpoint, as stability-first-ai `02-temporal-lora-gpt2/temporal_lora.py`
 * (c85243c, lines 1031-1036) saves it:
 *   torch.save({'adapters': {name: adapter.state_dict()}, 'time_mixer': time_mixer.state_dict(),
 *               'adapter_names': [...]}, 'temporal_lora_checkpoint.pt')
 * Adapter state dicts hold `lora_A` [r, C] and `lora_B` [C, r]; the mixer's holds
 * `domain_embed.weight`, `domain_classifier.{0,2}.{weight,bias}` and `gate.{0,2}.{weight,bias}`.
 * The GPT-2 base is not in it (they load it from the hub). Read here into one flat state dict under
 * the tlora family's names (`adapters.<name>.lora_A`, `time_mixer.…`), and written back the same way.
 */
import { BadInputError } from '../errors';
import { PyDict } from './pickle';
import type { HostTensor } from './tensor';
import type { TorchCheckpoint } from './torch';
import { OrderedDict, writeTorchSave, type TorchValue } from './torchSave';

export const ADAPTER_PREFIX = 'adapters.';
export const MIXER_PREFIX = 'time_mixer.';
/** Their state dicts' key order (module registration order): what `state_dict()` would give. */
const ADAPTER_KEYS = ['lora_A', 'lora_B'];
const MIXER_KEYS = ['domain_embed.weight', 'domain_classifier.0.weight', 'domain_classifier.0.bias', 'domain_classifier.2.weight', 'domain_classifier.2.bias', 'gate.0.weight', 'gate.0.bias', 'gate.2.weight', 'gate.2.bias'];

/** The tensors under `prefix`, without it, in their order (known keys first, any others after). */
function ownDict(weights: Map<string, HostTensor>, prefix: string, order: string[]): OrderedDict {
  const own = new Map([...weights].filter(([k]) => k.startsWith(prefix)).map(([k, t]): [string, TorchValue] => [k.slice(prefix.length), t]));
  const keys = [...order.filter((k) => own.has(k)), ...[...own.keys()].filter((k) => !order.includes(k))];
  return new OrderedDict(new Map(keys.map((k) => [k, own.get(k)!])));
}

function isTensor(v: unknown): v is HostTensor {
  return !!v && typeof v === 'object' && 'shape' in v && 'values' in v;
}

/** Does the unpickled root look like their checkpoint dict? */
export function isTloraCheckpoint(root: PyDict): boolean {
  return root.map.has('adapters') && root.map.has('time_mixer');
}

/** The tensors of one state dict, in order; `what` names it in errors. */
function stateDictOf(d: unknown, name: string, what: string): [string, HostTensor][] {
  if (!(d instanceof PyDict)) throw new BadInputError(`${name}: ${what} is not a state dict (a Temporal LoRA checkpoint holds {adapters: {name: state_dict}, time_mixer: state_dict, adapter_names})`);
  const out: [string, HostTensor][] = [];
  for (const [k, v] of d.map) {
    if (typeof k !== 'string' || !isTensor(v)) throw new BadInputError(`${name}: ${what} holds '${String(k)}', which is not a tensor`);
    out.push([k, v]);
  }
  return out;
}

/** Their dict as a flat state dict under our names, with `adapter_names` as the file's config. */
export function tloraCheckpointOf(root: PyDict, name: string): TorchCheckpoint {
  const adapters = root.map.get('adapters');
  if (!(adapters instanceof PyDict) || !adapters.map.size) throw new BadInputError(`${name}: 'adapters' holds no adapters (a Temporal LoRA checkpoint needs at least one)`);
  const listed = root.map.get('adapter_names');
  const names = Array.isArray(listed) ? listed : [...adapters.map.keys()];
  if (!names.every((n): n is string => typeof n === 'string' && n.length > 0)) throw new BadInputError(`${name}: 'adapter_names' must be a list of adapter names`);
  const missing = names.find((n) => !adapters.map.has(n)) ?? [...adapters.map.keys()].find((k) => !names.includes(k as string));
  if (missing !== undefined) throw new BadInputError(`${name}: adapter '${String(missing)}' is in ${adapters.map.has(missing) ? "'adapters' but not in 'adapter_names'" : "'adapter_names' but not in 'adapters'"} (the checkpoint is inconsistent)`);
  const entries: [string, HostTensor][] = [];
  for (const n of names) for (const [k, t] of stateDictOf(adapters.map.get(n), name, `adapter '${n}'`)) entries.push([`${ADAPTER_PREFIX}${n}.${k}`, t]);
  const mixer = root.map.get('time_mixer');
  if (mixer === null || mixer === undefined) throw new BadInputError(`${name}: 'time_mixer' is None (saved before any adapter was added): there is no router to load`);
  for (const [k, t] of stateDictOf(mixer, name, "'time_mixer'")) entries.push([`${MIXER_PREFIX}${k}`, t]);
  return { kind: 'state-dict', stateDict: new Map(entries), stateDictOrder: entries.map(([k]) => k), config: { family: 'tlora', adapter_names: names } };
}

/**
 * Writes their format from our state dict (names `adapters.<name>.*`, `time_mixer.*`; base weights,
 * if any, are left out as theirs leaves the backbone out).
 */
export function writeTloraCheckpoint(file: string, weights: Map<string, HostTensor>, adapterNames: string[]): void {
  const adapters = new Map<string, TorchValue>(adapterNames.map((n) => [n, ownDict(weights, `${ADAPTER_PREFIX}${n}.`, ADAPTER_KEYS)]));
  const root = new Map<string, TorchValue>([
    ['adapters', adapters],
    ['time_mixer', ownDict(weights, MIXER_PREFIX, MIXER_KEYS)],
    ['adapter_names', [...adapterNames]],
  ]);
  writeTorchSave(file, root);
}
