import { createI18n } from 'vue-i18n';
import en from './locales/en';
import zhCN from './locales/zh-CN';

export const LANGUAGES = ['zh-CN', 'en'] as const;
export type Language = (typeof LANGUAGES)[number];

/** Only the language choice is kept in the browser's storage; never a token. */
const LANGUAGE_STORAGE_KEY = 'kuboard.language';

export function languageFromBrowser(preferred: readonly string[]): Language {
  for (const tag of preferred) {
    const lower = tag.toLowerCase();
    if (lower.startsWith('zh')) {
      return 'zh-CN';
    }
    if (lower.startsWith('en')) {
      return 'en';
    }
  }
  return 'en';
}

function storedLanguage(): Language | null {
  try {
    const value = globalThis.localStorage?.getItem(LANGUAGE_STORAGE_KEY);
    return LANGUAGES.find((language) => language === value) ?? null;
  } catch {
    return null;
  }
}

export function initialLanguage(): Language {
  const browser = typeof navigator === 'undefined' ? [] : (navigator.languages ?? [navigator.language]);
  return storedLanguage() ?? languageFromBrowser(browser);
}

export const i18n = createI18n({
  legacy: false,
  locale: initialLanguage(),
  fallbackLocale: 'en',
  messages: { en, 'zh-CN': zhCN },
  // A missing key is a defect: the end-to-end suite looks for the warnings and for raw keys.
  missingWarn: true,
  fallbackWarn: true,
});

export function setLanguage(language: Language): void {
  i18n.global.locale.value = language;
  try {
    globalThis.localStorage?.setItem(LANGUAGE_STORAGE_KEY, language);
  } catch {
    // Storage may be off (private mode); the choice then lasts for this page only.
  }
  if (typeof document !== 'undefined') {
    document.documentElement.lang = language;
  }
}

export function currentLanguage(): Language {
  return i18n.global.locale.value as Language;
}
