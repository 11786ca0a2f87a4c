"""The Datasets page builds the indexes profiles need, in this process or on Ray, and shows Ray's refusals as errors."""
from core.workspace import Workspace
from tests.app.test_datasets import open_datasets


def test_building_in_this_process_lists_what_was_built(app_at, tmp_path, mini_data_dir):
    app_at(Workspace.open(tmp_path / "ws", mini_data_dir), mini_data_dir)
    at = open_datasets()
    at.multiselect(key="datasets_index_profiles").set_value(["bm25-code"]).run()
    at.button(key="datasets_index_build").click().run()
    assert not at.exception and not at.error
    shown = [s.value.replace("\\", "") for s in at.success]  # the page escapes markdown
    assert len(shown) == 1 and shown[0].startswith("- BM25 index (code) for csn-mini: built in ")
    at.button(key="datasets_index_build").click().run()  # the second time the engine has it open already
    assert [s.value for s in at.success] == ["Every index these profiles need is already open."]


def test_an_unreachable_ray_address_is_an_error_in_the_page(app_env):
    at = open_datasets()
    at.radio(key="datasets_index_engine").set_value("ray").run()
    at.text_input(key="datasets_index_address").input("127.0.0.1:9").run()
    at.button(key="datasets_index_build").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "No Ray cluster answers at 127.0.0.1:9" in at.error[0].value.replace("\\", "")


def test_ray_options_reach_the_ray_engine(app_at, local_ray, tmp_path, mini_data_dir):
    app_at(Workspace.open(tmp_path / "ws", mini_data_dir), mini_data_dir)
    at = open_datasets()
    at.multiselect(key="datasets_index_profiles").set_value(["dense-minilm"]).run()
    at.radio(key="datasets_index_engine").set_value("ray").run()
    at.number_input(key="datasets_index_actors").set_value(3).run()
    at.button(key="datasets_index_build").click().run()
    assert not at.exception
    assert len(at.error) == 1 and "3 actor(s) x 1 CPU need 3 CPUs, but the cluster has 2" in at.error[0].value.replace("\\", "")
