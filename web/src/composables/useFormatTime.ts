import { useI18n } from 'vue-i18n';
import { formatTime } from '@/format';

/** `formatTime` in the language the user chose. */
export function useFormatTime() {
  const { locale } = useI18n();
  return (value: string | number | Date | null | undefined) => formatTime(value, locale.value);
}
