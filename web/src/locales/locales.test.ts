// @vitest-environment node
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, type SFCTemplateBlock } from 'vue/compiler-sfc';
import en from './en';
import zhCN from './zh-CN';

type TemplateChildNode = NonNullable<SFCTemplateBlock['ast']>['children'][number];
type ElementNode = Extract<TemplateChildNode, { tag: string }>;

const sourceRoot = fileURLToPath(new URL('..', import.meta.url));

/** Every leaf key path in definition order ("auth.login.title", ...). */
function keyPaths(messages: object, prefix = ''): string[] {
  return Object.entries(messages).flatMap(([key, value]) =>
    typeof value === 'object' && value !== null ? keyPaths(value, `${prefix}${key}.`) : [`${prefix}${key}`],
  );
}

function lookup(messages: object, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>((node, part) => (node as Record<string, unknown> | undefined)?.[part], messages);
}

function sourceFiles(directory: string): string[] {
  return readdirSync(directory).flatMap((name: string) => {
    const path = join(directory, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(vue|ts)$/.test(name) && !name.endsWith('.test.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

describe('locale files', () => {
  it('hold exactly the same keys in the same order', () => {
    expect(keyPaths(zhCN)).toEqual(keyPaths(en));
  });

  it('have no empty message', () => {
    for (const messages of [en, zhCN]) {
      for (const path of keyPaths(messages)) {
        expect(String(lookup(messages, path)).trim(), path).not.toBe('');
      }
    }
  });

  it('hold every key the code asks for', () => {
    const missing: string[] = [];
    for (const file of sourceFiles(sourceRoot)) {
      const text = readFileSync(file, 'utf8');
      // Literal keys: t('a.b.c'), and keys handed around as strings ('auth.password.errors.x').
      for (const match of text.matchAll(/\bt\(\s*'([a-zA-Z][\w.]*)'/g)) {
        const key = match[1] ?? '';
        if (typeof lookup(en, key) !== 'string') missing.push(`${relative(sourceRoot, file)}: ${key}`);
      }
      for (const match of text.matchAll(
        /'((?:common|nav|language|auth|clusters|users|audit|system)\.[\w.]+)'/g,
      )) {
        const key = match[1] ?? '';
        if (typeof lookup(en, key) !== 'string') missing.push(`${relative(sourceRoot, file)}: ${key}`);
      }
      // Keys built from a prefix: t(`clusters.endpointStates.${state}`) needs the prefix to exist.
      for (const match of text.matchAll(/t\(\s*`([\w.]+)\.\$\{/g)) {
        const prefix = match[1] ?? '';
        if (typeof lookup(en, prefix) !== 'object')
          missing.push(`${relative(sourceRoot, file)}: ${prefix}.*`);
      }
    }
    expect(missing).toEqual([]);
  });
});

// Attributes that show text to a user; a static value of one of them must come from `t(...)`.
const TEXT_ATTRIBUTES = new Set([
  'placeholder',
  'title',
  'label',
  'aria-label',
  'alt',
  'description',
  'sub-title',
  'content',
  'start-placeholder',
  'end-placeholder',
  'confirm-text',
  'empty-text',
]);
const NODE_ELEMENT = 1;
const NODE_TEXT = 2;
const NODE_ATTRIBUTE = 6;

function literalTexts(nodes: TemplateChildNode[], found: string[]): string[] {
  for (const node of nodes) {
    if (node.type === NODE_TEXT && /\p{L}/u.test(node.content)) {
      found.push(`text "${node.content.trim()}" at line ${node.loc.start.line}`);
    }
    if (node.type === NODE_ELEMENT) {
      const element = node as ElementNode;
      for (const prop of element.props) {
        if (
          prop.type === NODE_ATTRIBUTE &&
          TEXT_ATTRIBUTES.has(prop.name) &&
          /\p{L}/u.test(prop.value?.content ?? '')
        ) {
          found.push(`${prop.name}="${prop.value?.content}" at line ${prop.loc.start.line}`);
        }
      }
      literalTexts(element.children, found);
    }
    if ('children' in node && node.type !== NODE_ELEMENT && Array.isArray(node.children)) {
      literalTexts(node.children as TemplateChildNode[], found);
    }
  }
  return found;
}

describe('components', () => {
  const components = sourceFiles(sourceRoot).filter((file) => file.endsWith('.vue'));

  it('are found by the scan', () => {
    expect(components.length).toBeGreaterThan(10);
  });

  it('hold no literal user-facing text in their templates', () => {
    const offences: string[] = [];
    for (const file of components) {
      const { descriptor } = parse(readFileSync(file, 'utf8'), { filename: file });
      const ast = descriptor.template?.ast;
      if (ast) {
        for (const offence of literalTexts(ast.children, []))
          offences.push(`${relative(sourceRoot, file)}: ${offence}`);
      }
    }
    expect(offences).toEqual([]);
  });

  it('the scan finds literal text when there is some', () => {
    const { descriptor } = parse(
      '<template><div><el-button>Save</el-button><el-input placeholder="Name" /><p>{{ t("x") }}</p></div></template>',
    );
    expect(literalTexts(descriptor.template?.ast?.children ?? [], [])).toHaveLength(2);
  });
});
