//! A drawing backend wrapper that takes text away from plotters: PNG text is rasterised by
//! [`TextEngine`], SVG text stays `<text>` but is measured by the same engine, so the layout of
//! both files agrees and no plotters font feature is needed.

use plotters_backend::FontStyle;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind};

use super::text::{Extent, TextEngine};

/// plotters' text size is 1.24 × the em size (the SVG backend writes `font-size = size / 1.24`).
pub(crate) const SIZE_PER_EM: f64 = 1.24;

#[derive(Debug)]
pub(crate) struct TextBackend<'e, B> {
    inner: B,
    engine: &'e TextEngine,
    /// Draw text as pixels (bitmap targets) rather than passing it on (SVG).
    raster: bool,
}

impl<'e, B> TextBackend<'e, B> {
    pub(crate) fn raster(inner: B, engine: &'e TextEngine) -> Self {
        TextBackend { inner, engine, raster: true }
    }

    pub(crate) fn vector(inner: B, engine: &'e TextEngine) -> Self {
        TextBackend { inner, engine, raster: false }
    }

    fn extent<S: BackendTextStyle>(&self, text: &str, style: &S) -> Extent {
        let em = style.size() / SIZE_PER_EM;
        let bold = matches!(style.style(), FontStyle::Bold);
        if self.raster { self.engine.raster_extent(text, em, bold) } else { self.engine.vector_extent(text, em, bold) }
    }
}

type Res<E> = Result<(), DrawingErrorKind<E>>;

impl<B: DrawingBackend> DrawingBackend for TextBackend<'_, B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Res<B::ErrorType> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Res<B::ErrorType> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Res<B::ErrorType> {
        self.inner.draw_pixel(point, color)
    }
    fn draw_line<S: BackendStyle>(&mut self, from: BackendCoord, to: BackendCoord, style: &S) -> Res<B::ErrorType> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Res<B::ErrorType> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Res<B::ErrorType> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Res<B::ErrorType> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Res<B::ErrorType> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Res<B::ErrorType> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<B::ErrorType>> {
        let e = self.extent(text, style);
        Ok((e.width.max(0) as u32, (e.ascent + e.descent).max(0) as u32))
    }

    fn draw_text<S: BackendTextStyle>(&mut self, text: &str, style: &S, pos: BackendCoord) -> Res<B::ErrorType> {
        if !self.raster {
            return self.inner.draw_text(text, style, pos);
        }
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let e = self.extent(text, style);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Center => -e.width / 2,
            HPos::Right => -e.width,
        };
        // Offset of the baseline from the anchor: Top and Bottom bound the whole line box; Center
        // centres the caps (about 0.73 of the ascent), which is what digits and labels need.
        let baseline = match anchor.v_pos {
            VPos::Top => e.ascent,
            VPos::Center => (e.ascent * 4 + 5) / 10,
            VPos::Bottom => -e.descent,
        };
        let transform = style.transform();
        let em = style.size() / SIZE_PER_EM;
        let bold = matches!(style.style(), FontStyle::Bold);
        let inner = &mut self.inner;
        self.engine.draw(text, em, bold, |x, y, coverage| {
            let (tx, ty) = transform.transform(x + dx, y + baseline);
            let alpha = color.alpha * f64::from(coverage.clamp(0.0, 1.0));
            inner.draw_pixel((pos.0 + tx, pos.1 + ty), BackendColor { alpha, rgb: color.rgb })
        })
    }
}
