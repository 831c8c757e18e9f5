// Charts and montages as PNG files (OpenCV drawing, no plotting dependency): horizontal bar charts
// for global explanations, line charts for intervention curves, labelled thumbnail grids for
// retrieval. Files are encoded in memory and written atomically.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace cl::explain {

struct Bar {
  std::string label;
  double value = 0;
};

struct BarPanel {
  std::string title;
  std::vector<Bar> bars;  // drawn top to bottom; negative values extend left of the axis
};

// One panel per class (or any grouping), stacked vertically in one image.
void write_bar_charts(const std::string& path, const std::vector<BarPanel>& panels, const std::string& value_label,
                      const std::vector<std::string>& inputs = {});

struct Series {
  std::string name;
  std::vector<double> x, y;
  std::vector<double> lo, hi;  // optional band (same length as x), e.g. a control's interval
  bool connect = true;         // false: a scatter (points only)
  int marker_px = 3;
  std::vector<std::string> labels;  // optional, one per point, drawn beside it
};

void write_line_chart(const std::string& path, const std::string& title, const std::string& x_label,
                      const std::string& y_label, const std::vector<Series>& series,
                      const std::vector<std::string>& inputs = {});

struct Tile {
  cv::Mat image;        // BGR (any size; letterboxed into the tile), or empty for "missing"
  std::string caption;  // drawn under the image, one line per '\n'
};

void write_montage(const std::string& path, const std::string& title, const std::vector<Tile>& tiles, int cols,
                   int tile_px = 160, const std::vector<std::string>& inputs = {});
cv::Mat render_montage(const std::string& title, const std::vector<Tile>& tiles, int cols, int tile_px = 160);

// The encoded PNG bytes of an image, and an atomic write of them.
void write_png(const std::string& path, const cv::Mat& image, const std::vector<std::string>& inputs = {});

}  // namespace cl::explain
