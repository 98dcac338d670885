import { SkybatchError } from './common/errors.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Constructor<T> = new (path: string, options?: any) => T;

/** What a registered format name looks like; jobs naming anything else are refused before any lookup. */
export const FORMAT_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/**
 * Maps a type name to a format class, so a job can name its reader and writers across
 * processes: the client sends `{ type, path, options }`, a worker looks the class up here.
 */
export class Registry<T> {
  private readonly byName = new Map<string, Constructor<T>>();
  private readonly byClass = new Map<Constructor<T>, string>();

  constructor(readonly kind: string) {}

  /** Registers `cls` under `name`. Registering the same name again replaces the class. */
  register<C extends Constructor<T>>(name: string, cls: C): C {
    if (typeof name !== 'string' || !FORMAT_NAME_PATTERN.test(name)) {
      throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `${this.kind} name ${JSON.stringify(name)} is invalid: start with a letter or digit, then letters, digits, '_', '-', '.'`);
    }
    if (typeof cls !== 'function') {
      throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `${this.kind} '${name}': register() needs a class, got ${typeof cls}`);
    }
    const previous = this.byName.get(name);
    if (previous) this.byClass.delete(previous);
    this.byName.set(name, cls);
    this.byClass.set(cls, name);
    return cls;
  }

  /**
   * Class decorator form: `@REGISTRY.typeRegister('range') class RangeReader ...`.
   * Works with TypeScript's standard decorators and with `experimentalDecorators`.
   */
  typeRegister(nameOrOpts: string | { name: string }): <C extends Constructor<T>>(cls: C, _context?: unknown) => C {
    const name = typeof nameOrOpts === 'string' ? nameOrOpts : nameOrOpts.name;
    return (cls) => this.register(name, cls);
  }

  get(name: string): Constructor<T> {
    const cls = this.byName.get(name);
    if (!cls) {
      throw new SkybatchError(
        'SKYBATCH_E_UNREGISTERED_FORMAT',
        `no ${this.kind} registered as '${name}' (known: ${[...this.byName.keys()].join(', ') || 'none'})`,
      );
    }
    return cls;
  }

  /** The registered name of an instance's class, walking up to the nearest registered ancestor's own class only. */
  nameOf(instance: T): string {
    const cls = (instance as object).constructor as Constructor<T>;
    const name = this.byClass.get(cls);
    if (name === undefined) {
      throw new SkybatchError(
        'SKYBATCH_E_UNREGISTERED_FORMAT',
        `${this.kind} class ${cls.name || '(anonymous)'} is not registered: decorate it with ` +
          `@registry.${this.kind === 'input reader' ? 'INPUT_READER' : 'OUTPUT_WRITER'}_REGISTRY.typeRegister('name') or call register('name', ${cls.name})`,
      );
    }
    return name;
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
