import { describe, expect, it } from 'vitest';
import { useConfirmDelete, useDialogAction } from './useDialogAction';

describe('useDialogAction', () => {
  it('closes on success and keeps the dialog open with the failure otherwise', async () => {
    const dialog = useDialogAction<string>();
    dialog.show('alice');
    expect([dialog.open.value, dialog.target.value, dialog.failure.value]).toEqual([true, 'alice', null]);
    const failure = new Error('refused');
    expect(await dialog.submit(() => Promise.reject(failure))).toBe(false);
    expect([dialog.open.value, dialog.busy.value, dialog.failure.value]).toEqual([true, false, failure]);
    const seen: string[] = [];
    expect(await dialog.submit(async (name) => void seen.push(name))).toBe(true);
    expect([dialog.open.value, dialog.failure.value, seen]).toEqual([false, null, ['alice']]);
  });

  it('runs one action at a time and nothing before the dialog was shown', async () => {
    const dialog = useDialogAction();
    let calls = 0;
    expect(await dialog.submit(async () => void (calls += 1))).toBe(false);
    dialog.show();
    let release: () => void = () => undefined;
    const first = dialog.submit(() => new Promise<void>((resolve) => (release = resolve)));
    expect(dialog.busy.value).toBe(true);
    expect(await dialog.submit(async () => void (calls += 1))).toBe(false);
    release();
    expect(await first).toBe(true);
    expect(calls).toBe(0);
  });
});

describe('useConfirmDelete', () => {
  it('deletes the item asked about once confirmed, and clears the last failure when asked again', async () => {
    const removed: number[] = [];
    let refuse = true;
    const remove = async (id: number) => {
      if (refuse) throw new Error('conflict');
      removed.push(id);
    };
    const confirm = useConfirmDelete(remove);
    confirm.ask(7);
    expect(await confirm.confirm()).toBe(false);
    expect(confirm.failure.value).toBeInstanceOf(Error);
    confirm.ask(8);
    expect(confirm.failure.value).toBeNull();
    refuse = false;
    expect(await confirm.confirm()).toBe(true);
    expect([removed, confirm.open.value]).toEqual([[8], false]);
  });
});
