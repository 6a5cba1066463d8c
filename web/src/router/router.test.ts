import { describe, expect, it } from 'vitest';
import { redirectTarget } from './index';
import { languageFromBrowser } from '@/i18n';

describe('redirect after login', () => {
  it('goes back to a page of the console', () => {
    expect(redirectTarget('/audit?user=dev')).toBe('/audit?user=dev');
  });
  it('never leaves the console or loops to the login page', () => {
    for (const target of [
      '//evil.example/x',
      'https://evil.example/',
      '/login?redirect=/x',
      undefined,
      ['/a'],
    ]) {
      expect(redirectTarget(target)).toBe('/clusters');
    }
  });
});

describe('language from the browser', () => {
  it('picks Chinese for any zh tag and English otherwise', () => {
    expect(languageFromBrowser(['zh-TW', 'en'])).toBe('zh-CN');
    expect(languageFromBrowser(['fr-FR', 'en-GB'])).toBe('en');
    expect(languageFromBrowser(['de'])).toBe('en');
    expect(languageFromBrowser([])).toBe('en');
  });
});
