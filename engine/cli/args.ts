/**
 * A small, strict command-line parser: `--name value`, `--name=value`, boolean flags, repeated
 * lists (`--data a b c` or `--data a --data b`). Unknown options and non-numeric numbers are
 * bad input with one line naming the option.
 */
import { BadInputError } from '../errors';

export type ArgKind = 'string' | 'boolean' | 'int' | 'float' | 'list';
export type ArgSpec = Record<string, ArgKind>;

export function parseArgs(argv: string[], spec: ArgSpec, command: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new BadInputError(`${command}: unexpected argument '${a}' (options start with --; see headlens ${command} --help)`);
    const eq = a.indexOf('=');
    const name = a.slice(2, eq > 0 ? eq : undefined);
    const kind = spec[name];
    if (!kind) throw new BadInputError(`${command}: unknown option --${name} (see headlens ${command} --help)`);
    if (kind === 'boolean') {
      out[name] = eq > 0 ? parseBool(a.slice(eq + 1), name, command) : true;
      continue;
    }
    if (kind === 'list') {
      const values = eq > 0 ? [a.slice(eq + 1)] : [];
      while (eq < 0 && i + 1 < argv.length && !argv[i + 1].startsWith('--')) values.push(argv[++i]);
      if (!values.length) throw new BadInputError(`${command}: --${name} needs at least one value`);
      out[name] = [...((out[name] as string[]) ?? []), ...values];
      continue;
    }
    let raw: string;
    if (eq > 0) raw = a.slice(eq + 1);
    else {
      if (i + 1 >= argv.length) throw new BadInputError(`${command}: --${name} needs a value`);
      raw = argv[++i];
    }
    out[name] = convert(raw, kind, name, command);
  }
  return out;
}

function parseBool(raw: string, name: string, command: string): boolean {
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new BadInputError(`${command}: --${name} takes true or false, got '${raw}'`);
}

function convert(raw: string, kind: ArgKind, name: string, command: string): unknown {
  if (kind === 'string') return raw;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n)) throw new BadInputError(`${command}: --${name} must be a number, got '${raw}'`);
  if (kind === 'int' && !Number.isInteger(n)) throw new BadInputError(`${command}: --${name} must be a whole number, got '${raw}'`);
  return n;
}
